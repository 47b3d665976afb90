//! The lease: granting it, registering this member on it, keeping it alive, and starting over when it is lost.
//!
//! The loop refreshes the lease every TTL/3 over one keep-alive stream, one request at a time, and moves
//! the [`LeaseClock`] deadline to *request sent* + TTL − margin when the answer comes. A late or missing
//! answer drops the stream (so an old answer can never be taken for a new request's). When the deadline
//! passes, health turns Unreachable; when etcd says the lease is gone (TTL 0 or "not found": it expired
//! while this process was stopped or cut off), the clock is marked lost, a new lease is granted and the
//! member registered again. On shutdown the lease is revoked, which also removes the member key and any
//! claim or candidacy bound to it.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterError;
use crate::cluster::etcd::lease_not_found;
use crate::cluster::fence::{LeaseClock, Session, deadline_after};
use crate::cluster::inner::Inner;

/// Grants a lease and registers this member on it.
pub(crate) async fn establish(inner: &Inner) -> Result<Session, ClusterError> {
    let secs = i64::try_from(inner.etcd.timing.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let sent_at = Instant::now();
    let granted = inner
        .etcd
        .call("lease grant", &inner.name, |mut c| async move {
            c.lease_grant(secs, None).await
        })
        .await?;
    let ttl = Duration::from_secs(u64::try_from(granted.ttl()).unwrap_or(0));
    let session = Session {
        id: granted.id(),
        ttl,
        clock: LeaseClock::new(deadline_after(sent_at, ttl)),
    };
    register(inner, &session).await?;
    Ok(session)
}

/// Puts this member's record under its name, bound to the session's lease.
async fn register(inner: &Inner, session: &Session) -> Result<(), ClusterError> {
    let key = inner.keys.member(&inner.name);
    let value = serde_json::to_vec(&inner.me).map_err(|source| ClusterError::Encode {
        key: key.clone(),
        source,
    })?;
    let (k, id) = (key.clone(), session.id);
    let put = inner
        .etcd
        .call("put", &key, |mut c| {
            let (k, v) = (k.clone(), value.clone());
            let options = PutOptions::new().with_lease(id).with_prev_key();
            async move { c.put(k, v, Some(options)).await }
        })
        .await?;
    if let Some(prev) = put.prev_key().filter(|p| p.lease() != 0 && p.lease() != id) {
        tracing::warn!(member = %inner.name, lease = prev.lease(),
            "The member name was registered by another lease (another replica with the same name, or this one before a restart); replaced");
    }
    Ok(())
}

enum Outcome {
    Alive(Duration),
    Gone,
    Failed(String),
}

type Keeper = Option<(LeaseKeeper, LeaseKeepAliveStream)>;

/// Keeps `session` alive (and replaces it when it is lost; gets a first one when there is none yet, as when
/// etcd was unreachable at start) until `stop`; then revokes it.
pub(crate) async fn run(inner: Arc<Inner>, first: Option<Session>, stop: CancellationToken) {
    let timing = inner.etcd.timing;
    let mut session = first;
    let mut keeper: Keeper = None;
    let mut next = Instant::now() + timing.keepalive;
    let mut failures = 0u32;
    loop {
        if pause_until(&inner, session.as_ref(), next, &stop).await {
            break;
        }
        let Some(current) = session.clone() else {
            match establish(&inner).await {
                Ok(s) => {
                    tracing::info!(member = %inner.name, lease = s.id, "Joined the cluster with a new lease");
                    inner.session.send_replace(Some(s.clone()));
                    inner.reached();
                    next = Instant::now() + timing.keepalive;
                    session = Some(s);
                    failures = 0;
                }
                Err(error) => {
                    inner.lapsed();
                    failures += 1;
                    log_failure(failures, "Cannot get a new etcd lease", &error.to_string());
                    next = Instant::now() + timing.retry;
                }
            }
            continue;
        };
        let sent_at = Instant::now();
        let outcome = watch_deadline(
            &inner,
            &current,
            keep_alive_once(&inner, &current, &mut keeper),
        )
        .await;
        match outcome {
            Outcome::Alive(ttl) => {
                current.clock.extend(deadline_after(sent_at, ttl));
                inner.reached();
                next = sent_at + timing.keepalive;
                failures = 0;
            }
            Outcome::Gone => {
                tracing::warn!(member = %inner.name, lease = current.id,
                    "The etcd lease expired (this replica was stopped or cut off too long); joining again");
                current.clock.lose();
                inner.session.send_replace(None);
                keeper = None;
                session = None;
                next = Instant::now();
            }
            Outcome::Failed(error) => {
                keeper = None;
                failures += 1;
                log_failure(failures, "etcd keep-alive failed", &error);
                next = Instant::now() + timing.retry;
            }
        }
    }
    if let Some(s) = session {
        s.clock.lose();
        inner.session.send_replace(None);
        let id = s.id;
        let revoked = inner
            .etcd
            .call("lease revoke", &inner.name, |mut c| async move {
                c.lease_revoke(id).await
            })
            .await;
        match revoked {
            Ok(_) => tracing::info!(member = %inner.name, lease = id, "Left the cluster"),
            Err(error) => tracing::warn!(member = %inner.name, lease = id, error = %error,
                "Could not revoke the etcd lease on shutdown; it expires by itself"),
        }
    }
}

/// One failure is routine (a member restarting; the deadline has room for it): the third in a row is worth
/// a warning, the rest of an outage only debug lines (the outage itself is logged once by `lapsed`).
fn log_failure(failures: u32, what: &str, error: &str) {
    if failures == 3 {
        tracing::warn!(error, "{what}");
    } else {
        tracing::debug!(error, failures, "{what}");
    }
}

/// Sleeps until `until` (true if stopped first), turning health Unreachable if the deadline passes meanwhile.
async fn pause_until(
    inner: &Inner,
    session: Option<&Session>,
    until: Instant,
    stop: &CancellationToken,
) -> bool {
    loop {
        let deadline = session.map(|s| s.clock.deadline());
        if deadline.is_some_and(|d| Instant::now() >= d) {
            inner.lapsed();
        }
        let lapse = deadline.filter(|d| *d < until && inner.health().is_ok());
        tokio::select! {
            _ = stop.cancelled() => return true,
            _ = tokio::time::sleep_until(until) => return false,
            _ = tokio::time::sleep_until(lapse.unwrap_or(until)), if lapse.is_some() => inner.lapsed(),
        }
    }
}

/// Runs a keep-alive, turning health Unreachable the moment the deadline passes while it is in flight.
async fn watch_deadline(
    inner: &Inner,
    session: &Session,
    work: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    tokio::pin!(work);
    let mut noted = false;
    loop {
        let deadline = session.clock.deadline();
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = tokio::time::sleep_until(deadline), if !noted => {
                inner.lapsed();
                noted = true;
            }
        }
    }
}

/// One keep-alive request and its answer, within the RPC bound. Without a stream, or when the stream
/// fails, a new stream is opened at once (opening sends the first request itself and is retried on
/// another connection if the first one is dead). The caller dates the renewal from before the first try,
/// which can only make the deadline earlier, never later.
async fn keep_alive_once(inner: &Inner, session: &Session, keeper: &mut Keeper) -> Outcome {
    if let Some((k, stream)) = keeper.as_mut() {
        let exchange = async {
            k.keep_alive().await?;
            stream.message().await
        };
        let bound = inner.etcd.timing.rpc;
        let failed = match tokio::time::timeout(bound, exchange).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => return Outcome::Alive(secs(r.ttl())),
            Ok(Ok(Some(_))) => return Outcome::Gone,
            Ok(Ok(None)) => "keep-alive stream closed".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no keep-alive answer within {bound:?}"),
        };
        tracing::debug!(member = %inner.name, error = failed, "Keep-alive stream failed; opening another");
        *keeper = None;
    }
    let id = session.id;
    let opened = inner
        .etcd
        .call("lease keep-alive", &inner.name, |mut c| async move {
            c.lease_keep_alive(id).await
        })
        .await;
    match opened {
        Ok(opened) => {
            *keeper = Some(opened);
            Outcome::Alive(session.ttl)
        }
        Err(ClusterError::Etcd { source, .. }) if lease_not_found(&source) => Outcome::Gone,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}
