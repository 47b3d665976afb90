//! Whether etcd is reachable from this replica, and the events that say when that changes.
//!
//! "Unreachable" is decided by the lease clock, not by one failed call: it starts when the lease deadline
//! passes without a keep-alive getting through (so one etcd member dying, or one slow answer, changes
//! nothing), and ends at the next keep-alive or new lease that succeeds. The tracker is pure so that
//! "Degraded once, Recovered once" is tested without etcd.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

/// etcd as this replica sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The lease is being kept alive.
    Ok,
    /// No keep-alive got through before the lease deadline; leader-only work has stopped.
    Unreachable {
        /// When the lease deadline passed.
        since: SystemTime,
    },
}

impl Health {
    /// "ok" or "unreachable", as in the status JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Unreachable { .. } => "unreachable",
        }
    }

    /// Whether etcd is reachable.
    pub fn is_ok(&self) -> bool {
        matches!(self, Health::Ok)
    }
}

/// What happened to this replica's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event")]
pub enum ClusterEvent {
    /// etcd became unreachable (sent once per outage).
    Degraded {
        /// When the lease deadline passed.
        since: SystemTime,
    },
    /// etcd is reachable again and this replica is a member again (sent once per outage).
    Recovered {
        /// How long the outage lasted, as seen here.
        after: Duration,
    },
    /// This replica became the leader.
    LeadershipGained,
    /// This replica stopped being the leader.
    LeadershipLost,
}

/// The pure state machine behind [`Health`]: each input returns the event to send, if any.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    down: Option<(Instant, SystemTime)>,
}

impl Default for HealthTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthTracker {
    /// Healthy.
    pub fn new() -> HealthTracker {
        HealthTracker { down: None }
    }

    /// The current health.
    pub fn health(&self) -> Health {
        match self.down {
            None => Health::Ok,
            Some((_, since)) => Health::Unreachable { since },
        }
    }

    /// The lease deadline passed without a keep-alive: `Degraded` the first time.
    pub fn lapsed(&mut self, now: Instant, wall: SystemTime) -> Option<ClusterEvent> {
        if self.down.is_some() {
            return None;
        }
        self.down = Some((now, wall));
        Some(ClusterEvent::Degraded { since: wall })
    }

    /// A keep-alive or a new lease got through: `Recovered` if it was down.
    pub fn succeeded(&mut self, now: Instant) -> Option<ClusterEvent> {
        let (since, _) = self.down.take()?;
        Some(ClusterEvent::Recovered {
            after: now.saturating_duration_since(since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_once_and_recovered_once() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut h = HealthTracker::new();
        assert_eq!(h.succeeded(t0), None, "healthy stays quiet");
        assert_eq!(h.health(), Health::Ok);
        assert_eq!(
            h.lapsed(t0, wall),
            Some(ClusterEvent::Degraded { since: wall })
        );
        assert_eq!(h.lapsed(t0 + Duration::from_secs(1), wall), None);
        assert_eq!(h.health(), Health::Unreachable { since: wall });
        assert_eq!(h.health().as_str(), "unreachable");
        assert_eq!(
            h.succeeded(t0 + Duration::from_secs(7)),
            Some(ClusterEvent::Recovered {
                after: Duration::from_secs(7)
            })
        );
        assert_eq!(h.succeeded(t0 + Duration::from_secs(8)), None);
        assert!(h.health().is_ok());
    }
}
