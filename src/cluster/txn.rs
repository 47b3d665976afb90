//! Guarded transactions on shared state: several puts and deletes under `{prefix}/state/` applied at once, only
//! if every guard holds (a key absent, a key unchanged since it was read) and, when a [`Fence`] is given, only
//! while the leader key still has the fence's create revision. What a part needs to allocate ids from a counter
//! or to take a lock that a deposed leader cannot take or keep.

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp};
use serde::de::DeserializeOwned;

pub use super::change::{Guard, Life, Versioned, Write};
use super::error::ClusterError;
use super::fence::Fence;
use super::handle::Cluster;

impl Cluster {
    /// The JSON value at `state/{key}` with its revision and lease, if any.
    pub async fn get_versioned<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, ClusterError> {
        let full = self.inner.keys.state(key)?;
        let k = full.clone();
        let found = self
            .inner
            .etcd
            .call("get", &full, |mut c| {
                let k = k.clone();
                async move { c.get(k, None).await }
            })
            .await?;
        match found.kvs().first() {
            None => Ok(None),
            Some(kv) => Ok(Some(Versioned {
                value: serde_json::from_slice(kv.value())
                    .map_err(|source| ClusterError::Json { key: full, source })?,
                mod_revision: kv.mod_revision(),
                lease: kv.lease(),
            })),
        }
    }

    /// The last `limit` values under `state/{key_prefix}` by key, last first (keys padded with zeros sort as
    /// numbers), each with its key relative to `state/`.
    pub async fn list_json_last<T: DeserializeOwned>(
        &self,
        key_prefix: &str,
        limit: i64,
    ) -> Result<Vec<(String, T)>, ClusterError> {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(limit);
        self.list_with(key_prefix, options).await
    }

    /// Applies `writes` at once if every guard holds and, with `fence`, while its term is current (checked here
    /// first, then compared inside etcd on the leader key's create revision). `Ok(false)`: a guard or the
    /// fence's compare failed and nothing was written; [`ClusterError::Fenced`] when the fence failed locally;
    /// [`ClusterError::NoLease`] for a [`Life::Member`] put while this replica has no lease.
    pub async fn commit(
        &self,
        fence: Option<&Fence>,
        guards: &[Guard],
        writes: &[Write],
    ) -> Result<bool, ClusterError> {
        let keys = &self.inner.keys;
        let mut compares = Vec::with_capacity(guards.len() + 1);
        if let Some(fence) = fence {
            if let Err(why) = fence.check() {
                tracing::debug!(reason = %why, "Fenced transaction refused locally");
                return Err(ClusterError::Fenced);
            }
            compares.push(Compare::create_revision(
                fence.key().to_vec(),
                CompareOp::Equal,
                fence.rev(),
            ));
        }
        for guard in guards {
            compares.push(match guard {
                Guard::Absent(k) => Compare::create_revision(keys.state(k)?, CompareOp::Equal, 0),
                Guard::Unchanged(k, rev) => {
                    Compare::mod_revision(keys.state(k)?, CompareOp::Equal, *rev)
                }
            });
        }
        let mut ops = Vec::with_capacity(writes.len());
        let mut first = String::new();
        for write in writes {
            let op = match write {
                Write::Put { key, value, life } => {
                    let lease = match life {
                        Life::Kept => None,
                        Life::Member => Some(self.inner.live_lease()?),
                        Life::Seconds(ttl) => Some(self.grant(key, *ttl).await?),
                    };
                    let options = lease.map(|l| PutOptions::new().with_lease(l));
                    TxnOp::put(keys.state(key)?, value.clone(), options)
                }
                Write::Delete(key) => TxnOp::delete(keys.state(key)?, None),
            };
            if first.is_empty() {
                first = match write {
                    Write::Put { key, .. } | Write::Delete(key) => keys.state(key)?,
                };
            }
            ops.push(op);
        }
        let txn = Txn::new().when(compares).and_then(ops);
        let r = self
            .inner
            .etcd
            .call("txn", &first, |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        Ok(r.succeeded())
    }

    async fn grant(&self, key: &str, ttl: i64) -> Result<i64, ClusterError> {
        let granted = self
            .inner
            .etcd
            .call("lease grant", key, |mut c| async move {
                c.lease_grant(ttl.max(1), None).await
            })
            .await?;
        Ok(granted.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_are_json() {
        let w = Write::put("deploy/lock", &serde_json::json!({"id": 3}), Life::Member).unwrap();
        assert_eq!(
            w,
            Write::Put {
                key: "deploy/lock".into(),
                value: br#"{"id":3}"#.to_vec(),
                life: Life::Member
            }
        );
    }
}
