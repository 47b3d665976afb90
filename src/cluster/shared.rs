//! Watching shared state: every key under `{prefix}/state/{key_prefix}` as a map kept current by an etcd watch,
//! published on a `watch` channel (so readers never wait on etcd), and leased puts (values that vanish with
//! this replica: requests and answers between replicas).
//!
//! Each round lists the range, publishes it whole, then watches from the listed revision; a broken watch or an
//! unreachable etcd starts a new round (the last map stays published meanwhile).

use std::collections::BTreeMap;
use std::sync::Arc;

use etcd_client::{EventType, GetOptions, PutOptions, WatchOptions};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::inner::Inner;
use crate::cluster::{Cluster, ClusterError};

/// The values under a watched range: key (relative to `state/`) → raw JSON bytes.
pub type StateMap = BTreeMap<String, Vec<u8>>;

/// How long to wait before another round after a failure.
const AGAIN: std::time::Duration = std::time::Duration::from_millis(500);

impl Cluster {
    /// Keeps the values under `state/{key_prefix}` current on the returned channel until `stop`.
    pub fn watch_state(
        &self,
        key_prefix: &str,
        stop: CancellationToken,
    ) -> Result<watch::Receiver<StateMap>, ClusterError> {
        let range = self.inner.keys.state_range(key_prefix)?;
        let (tx, rx) = watch::channel(StateMap::new());
        tokio::spawn(run(self.inner.clone(), range, tx, stop));
        Ok(rx)
    }

    /// Writes `value` at `state/{key}`, bound to this replica's lease: it vanishes when this replica does.
    /// [`ClusterError::NoLease`] while there is no lease (etcd unreachable).
    pub async fn put_leased<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ClusterError> {
        let full = self.inner.keys.state(key)?;
        let bytes = serde_json::to_vec(value).map_err(|source| ClusterError::Encode {
            key: full.clone(),
            source,
        })?;
        let lease = self.inner.live_lease()?;
        let k = full.clone();
        self.inner
            .etcd
            .call("leased put", &full, |mut c| {
                let (k, v) = (k.clone(), bytes.clone());
                async move { c.put(k, v, Some(PutOptions::new().with_lease(lease))).await }
            })
            .await?;
        Ok(())
    }
}

async fn run(
    inner: Arc<Inner>,
    range: String,
    tx: watch::Sender<StateMap>,
    stop: CancellationToken,
) {
    let mut health = inner.health.subscribe();
    loop {
        if !inner.wait_healthy(&mut health, &stop).await {
            return;
        }
        match follow(&inner, &range, &tx, &mut health, &stop).await {
            Ok(()) => return,
            Err(reason) => {
                tracing::debug!(range = %range, reason, "State watch ended; watching again")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(AGAIN) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One list-then-watch round; Ok on `stop`, Err with why it ended otherwise.
async fn follow(
    inner: &Inner,
    range: &str,
    tx: &watch::Sender<StateMap>,
    health: &mut watch::Receiver<crate::cluster::Health>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let r = range.to_string();
    let listed = inner
        .etcd
        .call("get", range, |mut c| {
            let r = r.clone();
            async move { c.get(r, Some(GetOptions::new().with_prefix())).await }
        })
        .await
        .map_err(|e| e.to_string())?;
    let revision = listed.header().map_or(0, |h| h.revision());
    let relative = |key: &[u8]| {
        let full = String::from_utf8_lossy(key);
        inner.keys.state_key(&full).map(str::to_string)
    };
    let mut map = StateMap::new();
    for kv in listed.kvs() {
        if let Some(k) = relative(kv.key()) {
            map.insert(k, kv.value().to_vec());
        }
    }
    tx.send_replace(map.clone());
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = inner
        .etcd
        .call("watch", range, |mut c| {
            let (r, o) = (r.clone(), options.clone());
            async move { c.watch(r, Some(o)).await }
        })
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let message = tokio::select! {
            m = stream.message() => m,
            _ = stop.cancelled() => return Ok(()),
            _ = health.wait_for(|h| !h.is_ok()) => return Err("etcd unreachable".into()),
        };
        let response = match message {
            Ok(Some(r)) => r,
            Ok(None) => return Err("watch stream closed".into()),
            Err(e) => return Err(format!("watch failed: {e}")),
        };
        if response.canceled() {
            return Err(format!("watch cancelled: {}", response.cancel_reason()));
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let Some(key) = relative(kv.key()) else {
                continue;
            };
            match event.event_type() {
                EventType::Put => {
                    map.insert(key, kv.value().to_vec());
                }
                EventType::Delete => {
                    map.remove(&key);
                }
            }
        }
        tx.send_replace(map.clone());
    }
}
