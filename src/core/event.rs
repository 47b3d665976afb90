//! [`Event`]: the stable name of every thing tend tells the team about. One name gives the alert's dedup key
//! (`MonitorDown:website`), the `event` field of the log line and the `event` label of `tend_events_total`, so
//! the three never disagree and no alert name is typed as a string literal anywhere else.

use std::fmt;

macro_rules! events {
    ($($(#[$doc:meta])* $name:ident,)+) => {
        /// Everything that happens and that an operator may hear about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum Event {
            $($(#[$doc])* $name,)+
        }

        impl Event {
            /// Every event, in declaration order (for metrics created up front).
            pub const ALL: &'static [Event] = &[$(Event::$name,)+];

            /// The stable name, as in alert keys, log lines and metric labels.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Event::$name => stringify!($name),)+
                }
            }
        }
    };
}

events! {
    /// A monitored target went down (once per outage).
    MonitorDown,
    /// A target is still down after the reminder interval.
    MonitorStillDown,
    /// A down target is up again (once per outage).
    MonitorUp,
    /// Many targets went down at once, or the connectivity probe failed: one grouped alert.
    MonitorStorm,
    /// Targets of a grouped alert are still down.
    MonitorStormStillDown,
    /// Targets of a grouped alert are up again.
    MonitorStormOver,
    /// The autoscaler created instances.
    ScaledUp,
    /// The autoscaler terminated an instance.
    ScaledDown,
    /// A scaling step (listing, load, create, terminate, balancer) failed.
    ScaleFailed,
    /// A deploy started.
    DeployStarted,
    /// A deploy finished on every host.
    DeploySucceeded,
    /// A deploy failed (a step or health check).
    DeployFailed,
    /// A deploy stopped part-way because this replica stopped leading the cluster.
    DeployInterrupted,
    /// An error was logged.
    LogError,
    /// A fatal error was logged; the program exits.
    LogFatal,
    /// A thread or task panicked (with its backtrace); the panic goes on as it would have.
    Panic,
    /// A test alert from `tend notify`.
    TestAlert,
    /// This replica lost etcd for longer than a lease: it works alone.
    ClusterDegraded,
    /// This replica reaches etcd again.
    ClusterRecovered,
}

impl Event {
    /// The dedup key of this event about `about` (a target, a fleet, a deploy, a call site): `MonitorDown:website`.
    pub fn key(self, about: &str) -> String {
        format!("{}:{about}", self.name())
    }

    /// Position in [`Event::ALL`] (for per-event arrays).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_indexes_agree() {
        assert_eq!(Event::MonitorDown.key("web"), "MonitorDown:web");
        assert_eq!(Event::ScaledUp.to_string(), "ScaledUp");
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }
}
