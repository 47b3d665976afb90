//! What the cluster handle and its background tasks share: the etcd client, this member's identity, the
//! current lease, and the channels the tasks publish on (health, members, the observed leader, leadership).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ClusterError;
use super::etcd::Etcd;
use super::fence::{Fence, Session};
use super::health::{ClusterEvent, Health, HealthTracker};
use super::keys::Keys;
use super::member::{Member, MemberInfo};
use crate::metrics::Gauge;

/// The leader as etcd's election reports it: the candidate's value (its member name) and key revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) name: String,
    pub(crate) rev: i64,
}

/// What the handle and the background tasks share.
pub(crate) struct Inner {
    pub(crate) etcd: Etcd,
    pub(crate) name: String,
    pub(crate) keys: Keys,
    pub(crate) me: MemberInfo,
    pub(crate) session: watch::Sender<Option<Session>>,
    pub(crate) tracker: Mutex<HealthTracker>,
    pub(crate) health: watch::Sender<Health>,
    pub(crate) members: watch::Sender<Vec<Member>>,
    pub(crate) observed: watch::Sender<Option<Observed>>,
    pub(crate) leadership: watch::Sender<Option<Fence>>,
    pub(crate) events: broadcast::Sender<ClusterEvent>,
    pub(crate) leader_gauge: Gauge,
    pub(crate) members_gauge: Gauge,
    pub(crate) stopped: CancellationToken,
}

impl Inner {
    fn tracker(&self) -> std::sync::MutexGuard<'_, HealthTracker> {
        // The tracker is two fields updated together; a panic elsewhere cannot leave it half-written.
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn health(&self) -> Health {
        *self.health.borrow()
    }

    /// The lease deadline passed without a keep-alive: Unreachable, and `Degraded` once.
    pub(crate) fn lapsed(&self) {
        let event = self.tracker().lapsed(Instant::now(), SystemTime::now());
        if let Some(event) = event {
            self.health.send_replace(self.tracker().health());
            tracing::warn!(member = %self.name, "etcd unreachable: the lease could not be renewed in time");
            self.emit(event);
        }
    }

    /// A keep-alive or a new lease got through: Ok, and `Recovered` once.
    pub(crate) fn reached(&self) {
        let event = self.tracker().succeeded(Instant::now());
        if let Some(event) = event {
            self.health.send_replace(Health::Ok);
            if let ClusterEvent::Recovered { after } = &event {
                tracing::info!(member = %self.name, after = ?after, "etcd reachable again");
            }
            self.emit(event);
        }
    }

    pub(crate) fn emit(&self, event: ClusterEvent) {
        // No subscriber is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }

    pub(crate) fn publish_members(&self, members: &BTreeMap<String, Member>) {
        let list: Vec<Member> = members.values().cloned().collect();
        self.members_gauge.set(list.len() as f64);
        self.members.send_if_modified(|current| {
            let changed = *current != list;
            if changed {
                *current = list;
            }
            changed
        });
    }

    /// Waits until etcd is reachable; false if stopped first.
    pub(crate) async fn wait_healthy(
        &self,
        health: &mut watch::Receiver<Health>,
        stop: &CancellationToken,
    ) -> bool {
        tokio::select! {
            r = health.wait_for(|h| h.is_ok()) => r.is_ok(),
            _ = stop.cancelled() => false,
        }
    }

    /// The current lease, if it can be used for a claim.
    pub(crate) fn live_lease(&self) -> Result<i64, ClusterError> {
        match &*self.session.borrow() {
            Some(s) if !s.clock.is_lost() => Ok(s.id),
            _ => Err(ClusterError::NoLease),
        }
    }
}
