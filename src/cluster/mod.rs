//! Running several tend replicas as one: membership, leadership with fencing, claims and shared state on etcd.
//!
//! [`Cluster::join`] connects to etcd, grants a lease, registers this replica under it and starts four
//! background tasks that stop on the shutdown token: the keep-alive loop (`lease.rs`: it also starts over
//! with a new lease when the old one is lost), the campaign (`election.rs`), the leader observation, and the
//! member watch (`members.rs`). What they learn is published on `watch` channels, so readers never wait on
//! etcd: [`Cluster::members`], [`Cluster::leader`], [`Cluster::leadership`], [`Cluster::health`].
//!
//! Leadership is only as good as its [`Fence`]: check it right before acting, and write leader-only state
//! with [`Cluster::put_fenced`], which etcd refuses once a newer term exists. Alerts are claimed
//! ([`Cluster::claim`]) so that every alert is delivered once across replicas.

mod claim;
mod config;
mod election;
mod error;
mod etcd;
mod fence;
mod health;
mod inspect;
mod keys;
mod lease;
mod members;
pub mod rendezvous;
mod shared;
mod state;
mod status;
pub mod web;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use claim::Claim;
pub use config::{ClusterConfig, MIN_LEASE};
pub use error::ClusterError;
pub use fence::{Fence, NotLeader};
pub use health::{ClusterEvent, Health};
pub use inspect::inspect;
pub use members::{Member, MemberInfo};
pub use shared::StateMap;
pub use status::{ClusterStatus, MemberStatus};

use crate::metrics::{Gauge, Metrics};
use etcd::Etcd;
use health::HealthTracker;
use keys::Keys;
use lease::Session;

/// A cheap handle on this replica's place in the cluster; clone it into every part that needs it.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

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
    tracker: Mutex<HealthTracker>,
    pub(crate) health: watch::Sender<Health>,
    pub(crate) members: watch::Sender<Vec<Member>>,
    pub(crate) observed: watch::Sender<Option<Observed>>,
    pub(crate) leadership: watch::Sender<Option<Fence>>,
    events: broadcast::Sender<ClusterEvent>,
    pub(crate) leader_gauge: Gauge,
    members_gauge: Gauge,
    stopped: CancellationToken,
}

impl Cluster {
    /// Connects, grants a lease, registers this member, and starts the keep-alive, the member watch, the
    /// leader observation and the election campaign as background tasks that stop on `shutdown`
    /// (resigning and revoking the lease on a clean stop). Fails only on settings that cannot work (bad TLS
    /// files, a bad member name): when etcd cannot be reached at start, the replica starts degraded (health
    /// Unreachable, no leadership, claims refused so that alerts fail open) and joins as soon as it can.
    pub async fn join(
        config: &ClusterConfig,
        me: MemberInfo,
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> Result<Cluster, ClusterError> {
        if !keys::valid_member_name(&me.name) {
            return Err(ClusterError::InvalidName(me.name));
        }
        let etcd = Etcd::new(config)?;
        let inner = Arc::new(Inner {
            etcd,
            name: me.name.clone(),
            keys: Keys::new(&config.prefix),
            me,
            session: watch::Sender::new(None),
            tracker: Mutex::new(HealthTracker::new()),
            health: watch::Sender::new(Health::Ok),
            members: watch::Sender::new(Vec::new()),
            observed: watch::Sender::new(None),
            leadership: watch::Sender::new(None),
            events: broadcast::Sender::new(64),
            leader_gauge: metrics.gauge(
                "tend_cluster_leader",
                "1 while this replica leads the cluster, else 0.",
                &[],
            ),
            members_gauge: metrics.gauge(
                "tend_cluster_members",
                "Live members of the cluster as this replica sees them.",
                &[],
            ),
            stopped: CancellationToken::new(),
        });
        inner.leader_gauge.set(0.0);
        let first = match lease::establish(&inner).await {
            Ok(first) => {
                tracing::info!(member = %inner.name, lease = first.id, prefix = %config.prefix, "Joined the cluster");
                inner.session.send_replace(Some(first.clone()));
                Some(first)
            }
            Err(error) => {
                tracing::warn!(member = %inner.name, error = %crate::core::chain(&error),
                    "Cannot reach etcd at start; running alone until it answers");
                inner.lapsed();
                None
            }
        };

        let lease_stop = CancellationToken::new();
        let election = tokio::spawn(election::run(inner.clone(), shutdown.clone()));
        let keepalive = tokio::spawn(lease::run(inner.clone(), first, lease_stop.clone()));
        let observe = tokio::spawn(election::observe(inner.clone(), shutdown.clone()));
        let watch = tokio::spawn(members::run(inner.clone(), shutdown.clone()));
        let supervisor = inner.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            // Resign before the lease goes, so the next leader is chosen by the resignation, at once.
            let _ = election.await;
            lease_stop.cancel();
            let _ = keepalive.await;
            let _ = observe.await;
            let _ = watch.await;
            supervisor.leader_gauge.set(0.0);
            supervisor.members_gauge.set(0.0);
            supervisor.stopped.cancel();
        });
        Ok(Cluster { inner })
    }

    /// This replica's member name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The live members, this one included, sorted by name; kept current by a watch on etcd.
    pub fn members(&self) -> watch::Receiver<Vec<Member>> {
        self.inner.members.subscribe()
    }

    /// The leader's name as last observed; None when there is none or etcd is unreachable.
    pub fn leader(&self) -> Option<String> {
        self.inner
            .observed
            .borrow()
            .as_ref()
            .map(|o| o.name.clone())
    }

    /// `Some(fence)` while this replica leads. Check the fence before each leader-only action: it fails at
    /// the lease deadline even before this channel says None.
    pub fn leadership(&self) -> watch::Receiver<Option<Fence>> {
        self.inner.leadership.subscribe()
    }

    /// Whether etcd is reachable.
    pub fn health(&self) -> Health {
        *self.inner.health.borrow()
    }

    /// Degraded / Recovered / LeadershipGained / LeadershipLost, from now on.
    pub fn events(&self) -> broadcast::Receiver<ClusterEvent> {
        self.inner.events.subscribe()
    }

    /// Members, leader and etcd health, for `tend cluster` and the JSON API.
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus::new(
            &self.inner.name,
            self.leader(),
            &self.inner.members.borrow(),
            self.health(),
        )
    }

    /// Resolves once the background tasks have ended after shutdown (leadership resigned, lease revoked).
    pub async fn stopped(&self) {
        self.inner.stopped.cancelled().await;
    }
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
