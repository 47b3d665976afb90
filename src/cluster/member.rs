//! [`MemberInfo`]: what each replica registers about itself under `{prefix}/members/{name}`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterConfig;

/// What a replica says about itself (the JSON under `{prefix}/members/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member name, unique in the cluster.
    pub name: String,
    /// Its web address (status page and API), e.g. `http://10.0.0.5:8080`.
    pub address: String,
    /// The tend version it runs.
    pub version: String,
    /// When the process started.
    #[serde(with = "crate::core::time::serde_rfc3339")]
    pub started_at: SystemTime,
    /// Its label from `cluster.zone`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// A member as read back from etcd.
pub type Member = MemberInfo;

impl MemberInfo {
    /// This replica as `config` names it, reachable at `address`, started now, running this version.
    pub fn for_config(
        config: &ClusterConfig,
        address: impl Into<String>,
    ) -> Result<MemberInfo, crate::cluster::ClusterError> {
        Ok(MemberInfo {
            name: config.member_name()?,
            address: address.into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: SystemTime::now(),
            zone: config.zone.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn member_json_round_trips_with_readable_times() {
        let m = MemberInfo {
            name: "tend-a".into(),
            address: "http://10.0.0.5:8080".into(),
            version: "0.1.0".into(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            zone: None,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"name":"tend-a","address":"http://10.0.0.5:8080","version":"0.1.0","started_at":"2023-11-14T22:13:20.123Z"}"#
        );
        assert_eq!(serde_json::from_str::<MemberInfo>(&json).unwrap(), m);
    }
}
