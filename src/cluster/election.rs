//! Leadership: campaigning with etcd's election API beside the keep-alive loop, and ending each term the
//! moment it can no longer be trusted.
//!
//! A campaign blocks inside etcd until every older candidate is gone, and it can even return "won" after
//! this replica's own lease (and so its candidate key) expired while it waited. So a campaign is always
//! raced against the lease clock (dropped, which withdraws the candidacy, once the lease deadline passes or
//! the lease is lost), and a win is only believed after the leader key is read back bound to the current
//! lease. A term ends at the lease deadline, on lease loss, when the observed leader is a newer key, or on
//! shutdown (which resigns, so the next candidate leads at once). Every term has its own [`Fence`]; a new
//! term always needs a new campaign.

use std::sync::Arc;

use etcd_client::{LeaderKey, ResignOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterEvent;
use crate::cluster::fence::Fence;
use crate::cluster::fence::Session;
use crate::cluster::inner::{Inner, Observed};

/// Why a term ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    LeaseUntrusted,
    Deposed,
    Shutdown,
}

/// Campaigns, leads, and campaigns again, until `stop`.
pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let mut sessions = inner.session.subscribe();
    loop {
        let Some(session) = wait_live_session(&mut sessions, &stop).await else {
            return;
        };
        let won = tokio::select! {
            r = campaign(&inner, &session) => r,
            _ = session.clock.ended() => continue,
            _ = stop.cancelled() => return,
        };
        let leader_key = match won {
            Ok(k) => k,
            Err(error) if error.transient => {
                tracing::debug!(member = %inner.name, error = %error.message, "Campaign interrupted; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(inner.etcd.timing.retry) => continue,
                    _ = stop.cancelled() => return,
                }
            }
            Err(error) => {
                tracing::warn!(member = %inner.name, error = %error.message, "Campaign for leadership failed; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(inner.etcd.timing.retry) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        let fence = Fence::new(
            leader_key.key().to_vec(),
            leader_key.rev(),
            session.clock.clone(),
        );
        if fence.check().is_err() {
            continue;
        }
        let end = lead(&inner, &session, fence, &stop).await;
        if end == End::Shutdown {
            resign(&inner, leader_key).await;
            return;
        }
    }
}

/// The current session once its lease can be trusted; None on `stop`.
async fn wait_live_session(
    sessions: &mut watch::Receiver<Option<Session>>,
    stop: &CancellationToken,
) -> Option<Session> {
    loop {
        let current = sessions.borrow_and_update().clone();
        match current {
            Some(s) if s.clock.is_live() => return Some(s),
            Some(s) if !s.clock.is_lost() => {
                // Lapsed but not lost: a keep-alive may still get through and extend it.
                let mut changes = s.clock.subscribe();
                if s.clock.is_live() {
                    return Some(s);
                }
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = sessions.changed() => {}
                    _ = stop.cancelled() => return None,
                }
            }
            _ => tokio::select! {
                r = sessions.changed() => if r.is_err() { return None },
                _ = stop.cancelled() => return None,
            },
        }
    }
}

/// Why a campaign did not end in a term.
struct CampaignError {
    message: String,
    /// A broken connection rather than an answer from etcd.
    transient: bool,
}

impl CampaignError {
    fn from_etcd(e: &etcd_client::Error) -> CampaignError {
        CampaignError {
            message: e.to_string(),
            transient: crate::cluster::etcd::transient(e),
        }
    }

    fn other(message: impl Into<String>) -> CampaignError {
        CampaignError {
            message: message.into(),
            transient: false,
        }
    }
}

/// One campaign on `session`'s lease, believed only if the key is read back on that lease afterwards.
async fn campaign(inner: &Inner, session: &Session) -> Result<LeaderKey, CampaignError> {
    let name = inner.keys.election();
    let (endpoint, client) = inner.etcd.pick().await;
    let mut client = client.map_err(|e| CampaignError::from_etcd(&e))?;
    let mut response = client
        .campaign(name.clone(), inner.name.clone(), session.id)
        .await
        .map_err(|e| {
            let error = CampaignError::from_etcd(&e);
            if error.transient {
                inner.etcd.failed(endpoint);
            }
            error
        })?;
    let key = response
        .take_leader()
        .ok_or_else(|| CampaignError::other("campaign answered without a leader key"))?;
    let k = key.key().to_vec();
    let found = inner
        .etcd
        .call("get", &String::from_utf8_lossy(&k), |mut c| {
            let k = k.clone();
            async move { c.get(k, None).await }
        })
        .await
        .map_err(|e| CampaignError::other(e.to_string()))?;
    match found.kvs().first() {
        Some(kv) if kv.lease() == session.id && kv.create_revision() == key.rev() => Ok(key),
        _ => Err(CampaignError::other(
            "campaign returned but the candidate key is gone (its lease expired)",
        )),
    }
}

/// Holds one term until it ends; publishes it while it lasts.
async fn lead(inner: &Inner, session: &Session, fence: Fence, stop: &CancellationToken) -> End {
    let rev = fence.rev();
    inner.leadership.send_replace(Some(fence.clone()));
    inner.leader_gauge.set(1.0);
    inner.emit(ClusterEvent::LeadershipGained);
    tracing::info!(member = %inner.name, rev, "This replica leads the cluster");
    let end = tokio::select! {
        _ = session.clock.ended() => End::LeaseUntrusted,
        _ = deposed(inner.observed.subscribe(), rev) => End::Deposed,
        _ = stop.cancelled() => End::Shutdown,
    };
    fence.end();
    inner.leadership.send_replace(None);
    inner.leader_gauge.set(0.0);
    inner.emit(ClusterEvent::LeadershipLost);
    match end {
        End::LeaseUntrusted => tracing::warn!(member = %inner.name, rev,
            "Stopped leading: the etcd lease could not be renewed in time"),
        End::Deposed => {
            tracing::warn!(member = %inner.name, rev, "Stopped leading: another replica leads")
        }
        End::Shutdown => tracing::info!(member = %inner.name, rev, "Stepping down for shutdown"),
    }
    end
}

/// Resolves when the observed leader is a key newer than ours (ours was deleted and another won).
async fn deposed(mut observed: watch::Receiver<Option<Observed>>, rev: i64) {
    if observed
        .wait_for(|o| o.as_ref().is_some_and(|o| o.rev > rev))
        .await
        .is_err()
    {
        std::future::pending::<()>().await;
    }
}

async fn resign(inner: &Inner, key: LeaderKey) {
    let options = ResignOptions::new().with_leader(key);
    let done = inner
        .etcd
        .call("resign", &inner.keys.election(), |mut c| {
            let o = options.clone();
            async move { c.resign(Some(o)).await }
        })
        .await;
    if let Err(error) = done {
        tracing::warn!(member = %inner.name, error = %error,
            "Could not resign leadership; the next leader waits for the lease to go");
    }
}

/// Keeps `inner.observed` (and so `Cluster::leader`) on etcd's view of the leader until `stop`; None while
/// etcd is unreachable. A stream that breaks (its etcd member died) is opened again at once, elsewhere,
/// keeping the last view meanwhile.
pub(crate) async fn observe(inner: Arc<Inner>, stop: CancellationToken) {
    let mut health = inner.health.subscribe();
    let name = inner.keys.election();
    loop {
        if !inner.wait_healthy(&mut health, &stop).await {
            break;
        }
        let n = name.clone();
        let opened = inner
            .etcd
            .call("observe", &name, |mut c| {
                let n = n.clone();
                async move { c.observe(n).await }
            })
            .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                inner.observed.send_replace(None);
                tracing::debug!(error = %error, "Cannot observe the leader; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(inner.etcd.timing.retry) => continue,
                    _ = stop.cancelled() => break,
                }
            }
        };
        let reason = loop {
            tokio::select! {
                m = stream.message() => match m {
                    Ok(Some(r)) => {
                        let seen = r.kv().map(|kv| Observed {
                            name: String::from_utf8_lossy(kv.value()).into_owned(),
                            rev: kv.create_revision(),
                        });
                        inner.observed.send_replace(seen);
                    }
                    Ok(None) => break "observe stream closed".to_string(),
                    Err(e) => break e.to_string(),
                },
                _ = health.wait_for(|h| !h.is_ok()) => {
                    inner.observed.send_replace(None);
                    break "etcd unreachable".to_string();
                }
                _ = stop.cancelled() => break String::new(),
            }
        };
        if stop.is_cancelled() {
            break;
        }
        tracing::debug!(reason, "Leader observation broke; observing again");
        tokio::select! {
            _ = tokio::time::sleep(RESTREAM_PAUSE) => {}
            _ = stop.cancelled() => break,
        }
    }
    inner.observed.send_replace(None);
}

/// The pause before a broken stream (observe, member watch) is opened again: short, so a dead etcd member
/// goes unnoticed, but not a busy loop if etcd keeps closing it.
pub(crate) const RESTREAM_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
