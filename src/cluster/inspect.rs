//! `tend cluster`: the cluster as etcd holds it, read by a process that is not a member (it registers
//! nothing and campaigns for nothing): the members, the leader and whether etcd answers.

use etcd_client::GetOptions;

use super::etcd::Etcd;
use super::keys::Keys;
use super::{ClusterConfig, ClusterError, ClusterStatus, Health, Member};

/// The cluster's status from `config`'s etcd; `etcd: "unreachable"` (and no members) when it does not answer.
pub async fn inspect(config: &ClusterConfig) -> Result<ClusterStatus, ClusterError> {
    let etcd = Etcd::new(config)?;
    let keys = Keys::new(&config.prefix);
    let name = config.member_name()?;
    let prefix = keys.members();
    let p = prefix.clone();
    let listed = etcd
        .call("get", &prefix, |mut c| {
            let p = p.clone();
            async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
        })
        .await;
    let listed = match listed {
        Ok(l) => l,
        Err(error) => {
            tracing::debug!(error = %crate::core::chain(&error), "etcd does not answer");
            let down = Health::Unreachable {
                since: std::time::SystemTime::now(),
            };
            return Ok(ClusterStatus::new(&name, None, &[], down));
        }
    };
    let mut members: Vec<Member> = listed
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect();
    members.sort_by(|a: &Member, b| a.name.cmp(&b.name));
    let election = keys.election();
    let leader = etcd
        .call("leader", &election, |mut c| {
            let e = election.clone();
            async move { c.leader(e).await }
        })
        .await
        .ok()
        .and_then(|r| {
            r.kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
        });
    Ok(ClusterStatus::new(&name, leader, &members, Health::Ok))
}
