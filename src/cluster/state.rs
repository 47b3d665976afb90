//! Shared state and claims: JSON values under `{prefix}/state/`, fenced writes for the leader, and the
//! put-if-absent claims under `{prefix}/claims/` that make each alert go out once.

use std::time::{Duration, SystemTime};

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::claim::{self, Claim, ClaimRecord, Decision, Existing};
use crate::cluster::{Cluster, ClusterError, Fence};

impl Cluster {
    /// The JSON value at `prefix/state/{key}`, if any.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, ClusterError> {
        Ok(self.get_versioned(key).await?.map(|v| v.value))
    }

    /// Writes `value` as JSON at `prefix/state/{key}` (no lease: it stays until overwritten or deleted).
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ClusterError> {
        let full = self.inner.keys.state(key)?;
        let bytes = encode(&full, value)?;
        let k = full.clone();
        self.inner
            .etcd
            .call("put", &full, |mut c| {
                let (k, v) = (k.clone(), bytes.clone());
                async move { c.put(k, v, None).await }
            })
            .await?;
        Ok(())
    }

    /// Writes `value` only while `fence`'s term is current: the fence is checked here, and etcd applies the
    /// put only if the leader key still has the fence's create revision. Otherwise [`ClusterError::Fenced`].
    pub async fn put_fenced<T: Serialize>(
        &self,
        fence: &Fence,
        key: &str,
        value: &T,
    ) -> Result<(), ClusterError> {
        let full = self.inner.keys.state(key)?;
        let bytes = encode(&full, value)?;
        if let Err(why) = fence.check() {
            tracing::debug!(key = %full, reason = %why, "Fenced write refused locally");
            return Err(ClusterError::Fenced);
        }
        let txn = Txn::new()
            .when([Compare::create_revision(
                fence.key().to_vec(),
                CompareOp::Equal,
                fence.rev(),
            )])
            .and_then([TxnOp::put(full.clone(), bytes, None)]);
        let applied = self
            .inner
            .etcd
            .call("fenced put", &full, |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        if applied.succeeded() {
            Ok(())
        } else {
            tracing::debug!(key = %full, rev = fence.rev(), "Fenced write refused by etcd: the leader key changed");
            Err(ClusterError::Fenced)
        }
    }

    /// Every JSON value whose key starts with `key_prefix` (`""`: all), with its key relative to `state/`.
    pub async fn list_json<T: DeserializeOwned>(
        &self,
        key_prefix: &str,
    ) -> Result<Vec<(String, T)>, ClusterError> {
        self.list_with(key_prefix, GetOptions::new().with_prefix())
            .await
    }

    /// The JSON values under `state/{key_prefix}` that `options` (a prefix range, plus any order and limit)
    /// selects, each with its key relative to `state/`.
    pub(super) async fn list_with<T: DeserializeOwned>(
        &self,
        key_prefix: &str,
        options: GetOptions,
    ) -> Result<Vec<(String, T)>, ClusterError> {
        let range = self.inner.keys.state_range(key_prefix)?;
        let r = range.clone();
        let found = self
            .inner
            .etcd
            .call("list", &range, |mut c| {
                let (r, o) = (r.clone(), options.clone());
                async move { c.get(r, Some(o)).await }
            })
            .await?;
        let mut out = Vec::with_capacity(found.kvs().len());
        for kv in found.kvs() {
            let full = String::from_utf8_lossy(kv.key()).into_owned();
            let value =
                serde_json::from_slice(kv.value()).map_err(|source| ClusterError::Json {
                    key: full.clone(),
                    source,
                })?;
            let key = self.inner.keys.state_key(&full).unwrap_or(&full);
            out.push((key.to_string(), value));
        }
        Ok(out)
    }

    /// Deletes `prefix/state/{key}` (nothing if absent).
    pub async fn delete(&self, key: &str) -> Result<(), ClusterError> {
        let full = self.inner.keys.state(key)?;
        let k = full.clone();
        self.inner
            .etcd
            .call("delete", &full, |mut c| {
                let k = k.clone();
                async move { c.delete(k, None).await }
            })
            .await?;
        Ok(())
    }

    /// Claims `key` for this replica: put-if-absent bound to this member's lease, so it dies with this
    /// replica. [`ClusterError::NoLease`] while this replica has no lease (etcd unreachable): fail open.
    pub async fn claim(&self, key: &str) -> Result<Claim, ClusterError> {
        let full = self.inner.keys.claim(key)?;
        let held = encode(
            &full,
            &ClaimRecord::Held {
                by: self.inner.name.clone(),
            },
        )?;
        // A rebind can race another replica's takeover; a few rounds settle it.
        for _ in 0..3 {
            let lease = self.inner.live_lease()?;
            let put = TxnOp::put(
                full.clone(),
                held.clone(),
                Some(PutOptions::new().with_lease(lease)),
            );
            let txn = Txn::new()
                .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
                .and_then([put.clone()])
                .or_else([TxnOp::get(full.clone(), None)]);
            let r = self.txn("claim", &full, txn).await?;
            if r.succeeded() {
                return Ok(Claim::Won);
            }
            let Some(existing) = read_existing(&full, &r)? else {
                continue; // gone between compare and read cannot happen in one txn; be safe anyway
            };
            match claim::decide(&existing, &self.inner.name, lease) {
                Decision::Answer(answer) => return Ok(answer),
                Decision::Rebind { mod_revision } => {
                    let swap = Txn::new()
                        .when([Compare::mod_revision(
                            full.clone(),
                            CompareOp::Equal,
                            mod_revision,
                        )])
                        .and_then([put]);
                    if self.txn("claim rebind", &full, swap).await?.succeeded() {
                        return Ok(Claim::Won);
                    }
                }
            }
        }
        Err(ClusterError::Contended { key: full })
    }

    /// Replaces the claim on `key` by a "done" record on a lease of its own that lasts `keep_for`, so it
    /// outlives this member and keeps every replica from sending the same alert again meanwhile.
    pub async fn mark_done(&self, key: &str, keep_for: Duration) -> Result<(), ClusterError> {
        let full = self.inner.keys.claim(key)?;
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let done = encode(
            &full,
            &ClaimRecord::Done {
                by: self.inner.name.clone(),
                at,
            },
        )?;
        let ttl = claim::done_ttl(keep_for);
        let granted = self
            .inner
            .etcd
            .call("lease grant", &full, |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        let (k, id) = (full.clone(), granted.id());
        self.inner
            .etcd
            .call("put", &full, |mut c| {
                let (k, v) = (k.clone(), done.clone());
                async move { c.put(k, v, Some(PutOptions::new().with_lease(id))).await }
            })
            .await?;
        Ok(())
    }

    /// Drops this replica's own claim on `key` (delivery failed: let any replica try again). Leaves a
    /// claim held by another replica, and a done record, alone.
    pub async fn release(&self, key: &str) -> Result<(), ClusterError> {
        let full = self.inner.keys.claim(key)?;
        let lease = self.inner.live_lease()?;
        let txn = Txn::new()
            .when([Compare::lease(full.clone(), CompareOp::Equal, lease)])
            .and_then([TxnOp::delete(full.clone(), None)]);
        self.txn("release", &full, txn).await?;
        Ok(())
    }

    async fn txn(
        &self,
        op: &'static str,
        key: &str,
        txn: Txn,
    ) -> Result<etcd_client::TxnResponse, ClusterError> {
        self.inner
            .etcd
            .call(op, key, |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, ClusterError> {
    serde_json::to_vec(value).map_err(|source| ClusterError::Encode {
        key: key.to_string(),
        source,
    })
}

/// The claim record read in a failed claim transaction's `else` branch.
fn read_existing(
    key: &str,
    r: &etcd_client::TxnResponse,
) -> Result<Option<Existing>, ClusterError> {
    for op in r.op_responses() {
        let TxnOpResponse::Get(get) = op else {
            continue;
        };
        if let Some(kv) = get.kvs().first() {
            let record =
                serde_json::from_slice(kv.value()).map_err(|source| ClusterError::Json {
                    key: key.to_string(),
                    source,
                })?;
            return Ok(Some(Existing {
                record,
                lease: kv.lease(),
                mod_revision: kv.mod_revision(),
            }));
        }
    }
    Ok(None)
}
