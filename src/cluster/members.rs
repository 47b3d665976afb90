//! Membership: what each replica registers about itself, and the watch that keeps the live list current.
//!
//! Each replica puts its [`MemberInfo`] under `{prefix}/members/{name}` bound to its lease, so a replica
//! that stops keeping its lease alive drops out by itself. The list is read once and then *watched* from
//! the revision it was read at (no polling); after an outage, or a watch that etcd cancels, it is read and
//! watched again.

use std::collections::BTreeMap;
use std::sync::Arc;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio_util::sync::CancellationToken;

use crate::cluster::election::RESTREAM_PAUSE;
use crate::cluster::inner::Inner;
use crate::cluster::member::Member;

/// Keeps `inner.members` equal to the registered members until `stop`.
pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let mut health = inner.health.subscribe();
    loop {
        if !inner.wait_healthy(&mut health, &stop).await {
            return;
        }
        let pause = match follow(&inner, &mut health, &stop).await {
            Ok(()) => return,
            Err(Ended::Broke(reason)) => {
                tracing::debug!(reason, "Member watch broke; reading the members again");
                RESTREAM_PAUSE
            }
            Err(Ended::Failed(reason)) => {
                tracing::debug!(reason, "Cannot read or watch the members; trying again");
                inner.etcd.timing.retry
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Why a list-then-watch round ended.
enum Ended {
    /// The list or the watch could not be had.
    Failed(String),
    /// The watch worked, then broke.
    Broke(String),
}

/// One list-then-watch round; Ok on `stop`.
async fn follow(
    inner: &Inner,
    health: &mut tokio::sync::watch::Receiver<crate::cluster::Health>,
    stop: &CancellationToken,
) -> Result<(), Ended> {
    let prefix = inner.keys.members();
    let p = prefix.clone();
    let listed = inner
        .etcd
        .call("get", &prefix, |mut c| {
            let p = p.clone();
            async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
        })
        .await
        .map_err(|e| Ended::Failed(e.to_string()))?;
    let revision = listed.header().map_or(0, |h| h.revision());
    let mut members = BTreeMap::new();
    for kv in listed.kvs() {
        if let Some(m) = parse(inner, kv.key(), kv.value()) {
            members.insert(m.name.clone(), m);
        }
    }
    inner.publish_members(&members);

    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let p = prefix.clone();
    let mut stream = inner
        .etcd
        .call("watch", &prefix, |mut c| {
            let (p, o) = (p.clone(), options.clone());
            async move { c.watch(p, Some(o)).await }
        })
        .await
        .map_err(|e| Ended::Failed(e.to_string()))?;
    loop {
        let message = tokio::select! {
            m = stream.message() => m,
            _ = stop.cancelled() => return Ok(()),
            _ = health.wait_for(|h| !h.is_ok()) => return Err(Ended::Failed("etcd unreachable".into())),
        };
        let response = match message {
            Ok(Some(r)) => r,
            Ok(None) => return Err(Ended::Broke("watch stream closed".into())),
            Err(e) => return Err(Ended::Broke(format!("watch failed: {e}"))),
        };
        if response.canceled() {
            return Err(Ended::Broke(format!(
                "watch cancelled: {}",
                response.cancel_reason()
            )));
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => {
                    if let Some(m) = parse(inner, kv.key(), kv.value()) {
                        members.insert(m.name.clone(), m);
                    }
                }
                EventType::Delete => {
                    let key = String::from_utf8_lossy(kv.key());
                    if let Some(name) = inner.keys.member_name(&key) {
                        members.remove(name);
                    }
                }
            }
        }
        inner.publish_members(&members);
    }
}

fn parse(inner: &Inner, key: &[u8], value: &[u8]) -> Option<Member> {
    let key = String::from_utf8_lossy(key);
    let name = inner.keys.member_name(&key)?;
    match serde_json::from_slice::<Member>(value) {
        Ok(m) if m.name == name => Some(m),
        Ok(m) => {
            tracing::warn!(key = %key, name = %m.name, "Member record names another member; ignored");
            None
        }
        Err(error) => {
            tracing::warn!(key = %key, error = %error, "Member record is not valid JSON; ignored");
            None
        }
    }
}
