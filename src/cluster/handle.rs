//! [`Cluster`]: the handle parts hold on this replica's place in the cluster. [`Cluster::join`] starts the
//! background tasks; the accessors read what they published, so no reader ever waits on etcd.

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::etcd::Etcd;
use super::health::{ClusterEvent, Health, HealthTracker};
use super::inner::Inner;
use super::keys::{self, Keys};
use super::member::{Member, MemberInfo};
use super::{ClusterConfig, ClusterError, ClusterStatus, Fence, election, lease, members};
use crate::metrics::Metrics;

/// A cheap handle on this replica's place in the cluster; clone it into every part that needs it.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
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
        let inner = new_inner(config, me, metrics, 64)?;
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

    /// A handle that only reads and writes shared state, for a command-line process that is not a member: it
    /// registers nothing, campaigns for nothing and holds no lease (so it never leads, and `Life::Member`
    /// puts are refused).
    pub fn observer(config: &ClusterConfig) -> Result<Cluster, ClusterError> {
        let mut me = MemberInfo::for_config(config, String::new())?;
        me.name = config.member_name()?;
        let inner = new_inner(config, me, &Metrics::new(), 1)?;
        inner.stopped.cancel();
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

/// The shared state of a handle for `me`, its gauges registered in `metrics`, with room for `events` events.
fn new_inner(
    config: &ClusterConfig,
    me: MemberInfo,
    metrics: &Metrics,
    events: usize,
) -> Result<Arc<Inner>, ClusterError> {
    Ok(Arc::new(Inner {
        etcd: Etcd::new(config)?,
        name: me.name.clone(),
        keys: Keys::new(&config.prefix),
        me,
        session: watch::Sender::new(None),
        tracker: Mutex::new(HealthTracker::new()),
        health: watch::Sender::new(Health::Ok),
        members: watch::Sender::new(Vec::new()),
        observed: watch::Sender::new(None),
        leadership: watch::Sender::new(None),
        events: broadcast::Sender::new(events),
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
    }))
}
