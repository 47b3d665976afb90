//! What `tend cluster` and the JSON API show: members, the leader, and whether etcd is reachable.

use std::fmt;

use serde::Serialize;

use crate::cluster::{Health, Member};

/// A snapshot of the cluster as this replica sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// This replica's name.
    pub name: String,
    /// The observed leader's name, if known.
    pub leader: Option<String>,
    /// Live members by name.
    pub members: Vec<MemberStatus>,
    /// "ok" or "unreachable".
    pub etcd: &'static str,
}

/// One member in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// Its name.
    pub name: String,
    /// Its web address.
    pub address: String,
    /// When it started (RFC 3339).
    pub since: String,
    /// Its zone label, if any.
    pub zone: Option<String>,
}

impl ClusterStatus {
    /// The snapshot from what the background tasks last saw.
    pub fn new(name: &str, leader: Option<String>, members: &[Member], health: Health) -> Self {
        ClusterStatus {
            name: name.to_string(),
            leader,
            members: members
                .iter()
                .map(|m| MemberStatus {
                    name: m.name.clone(),
                    address: m.address.clone(),
                    since: humantime::format_rfc3339_seconds(m.started_at).to_string(),
                    zone: m.zone.clone(),
                })
                .collect(),
            etcd: health.as_str(),
        }
    }
}

/// A small table: one line per member, the leader marked with `*`, this replica with `(this)`.
impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "etcd: {}   leader: {}",
            self.etcd,
            self.leader.as_deref().unwrap_or("none")
        )?;
        let width = self.members.iter().map(|m| m.name.len()).max().unwrap_or(4);
        for m in &self.members {
            let mark = if self.leader.as_deref() == Some(m.name.as_str()) {
                '*'
            } else {
                ' '
            };
            let this = if m.name == self.name { " (this)" } else { "" };
            writeln!(
                f,
                "{mark} {:width$}  {}  since {}  {}{this}",
                m.name,
                m.address,
                m.since,
                m.zone.as_deref().unwrap_or("-"),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn json_shape_and_table() {
        let m = |name: &str, zone: Option<&str>| Member {
            name: name.into(),
            address: format!("http://{name}:8080"),
            version: "0.1.0".into(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            zone: zone.map(Into::into),
        };
        let s = ClusterStatus::new(
            "a",
            Some("b".into()),
            &[m("a", Some("eu-1a")), m("b", None)],
            Health::Ok,
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "a", "leader": "b", "etcd": "ok",
                "members": [
                    {"name": "a", "address": "http://a:8080", "since": "2023-11-14T22:13:20Z", "zone": "eu-1a"},
                    {"name": "b", "address": "http://b:8080", "since": "2023-11-14T22:13:20Z", "zone": null}
                ]
            })
        );
        let text = s.to_string();
        assert!(text.starts_with("etcd: ok   leader: b\n"), "{text}");
        assert!(
            text.contains("  a  http://a:8080  since 2023-11-14T22:13:20Z  eu-1a (this)\n"),
            "{text}"
        );
        assert!(text.contains("* b  http://b:8080"), "{text}");
    }
}
