//! Every alert once across replicas: before a message goes out it is claimed in etcd under its claim key
//! (put-if-absent, bound to this replica's lease); it is marked delivered once every notifier took it, and a
//! replica that finds it delivered records "delivered by tend-b" instead of sending it again. A claim whose
//! holder died vanishes with its lease, so another replica takes the message over.
//!
//! The alert thread asks a [`Claims`] edge (the cluster, or the fake in tests) for a [`Gate`] before each
//! delivery. Nothing in the alert caller's path waits on it: `Alerter::send` never does. When etcd is
//! unreachable the gate opens anyway ([`Gate::Uncoordinated`]): a duplicate beats silence during an outage.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cluster::{Claim, Cluster, Health};

/// What the claims say about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// This replica holds the claim: deliver.
    Deliver,
    /// etcd cannot be asked (unreachable): deliver without coordination.
    Uncoordinated,
    /// Another replica delivered it (its name): record that, send nothing.
    ByPeer(String),
    /// Another replica is delivering it, or the answer is not known yet: ask again after this long.
    Wait(Duration),
}

/// A boxed future of a claims call (keeps [`Claims`] usable as `dyn Claims`).
pub type ClaimFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The coordination edge: claim a message before delivering it, and mark it delivered after.
pub trait Claims: Send + Sync + 'static {
    /// Asks whether this replica may deliver the message with this claim key now.
    fn gate<'a>(&'a self, claim: &'a str) -> ClaimFuture<'a, Gate>;
    /// Marks the message delivered, remembered for `keep_for` (the dedup window).
    fn delivered<'a>(&'a self, claim: &'a str, keep_for: Duration) -> ClaimFuture<'a, ()>;
}

/// The etcd key of a message's claim: the event name for people reading etcd, and a hash of the claim text
/// (any characters, any length) for uniqueness.
pub fn claim_key(claim: &str) -> String {
    let event: String = claim
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let digest = Sha256::digest(claim.as_bytes());
    let event = if event.is_empty() { "alert" } else { &event };
    format!("alerts/{event}/{}", hex::encode(&digest[..12]))
}

/// How long a replica waits before asking again about a message another replica is delivering.
const RECHECK: Duration = Duration::from_secs(1);

/// Claims kept in the cluster's etcd.
pub struct ClusterClaims {
    cluster: Cluster,
    /// The cluster's lease: a claim held by a dead replica is gone after it, so asking again after a third of
    /// it takes the message over promptly.
    lease: Duration,
}

impl ClusterClaims {
    /// Claims on `cluster`, whose lease is `lease`.
    pub fn new(cluster: Cluster, lease: Duration) -> ClusterClaims {
        ClusterClaims { cluster, lease }
    }
}

impl Claims for ClusterClaims {
    fn gate<'a>(&'a self, claim: &'a str) -> ClaimFuture<'a, Gate> {
        Box::pin(async move {
            if let Health::Unreachable { .. } = self.cluster.health() {
                return Gate::Uncoordinated;
            }
            match self.cluster.claim(&claim_key(claim)).await {
                Ok(Claim::Won) => Gate::Deliver,
                Ok(Claim::Done { by }) => Gate::ByPeer(by),
                Ok(Claim::HeldBy(_)) => Gate::Wait((self.lease / 3).max(RECHECK)),
                Err(error) => {
                    // Unreachable is decided by the lease clock, not by one failed call: until it says so,
                    // ask again soon; after, the gate opens.
                    tracing::debug!(alert = false, error = %crate::core::chain(&error), "Alert claim failed");
                    if self.cluster.health().is_ok() {
                        Gate::Wait(RECHECK)
                    } else {
                        Gate::Uncoordinated
                    }
                }
            }
        })
    }

    fn delivered<'a>(&'a self, claim: &'a str, keep_for: Duration) -> ClaimFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = self.cluster.mark_done(&claim_key(claim), keep_for).await {
                tracing::warn!(alert = false, error = %crate::core::chain(&error),
                    "Cannot mark an alert delivered in etcd; another replica may send it again");
            }
        })
    }
}

#[cfg(test)]
pub mod testing {
    //! A fake [`Claims`]: a shared map of claim → holder, as etcd would keep it, for several workers.

    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// The cluster's claims as one map, shared by fakes that play different replicas.
    #[derive(Debug, Default, Clone)]
    pub struct Board(pub Arc<Mutex<HashMap<String, (String, bool)>>>);

    /// One replica's view of the [`Board`]; `down` makes it act as if etcd were unreachable.
    pub struct FakeClaims {
        /// The replica's name.
        pub me: String,
        /// The shared claims.
        pub board: Board,
        /// etcd unreachable.
        pub down: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Claims for FakeClaims {
        fn gate<'a>(&'a self, claim: &'a str) -> ClaimFuture<'a, Gate> {
            Box::pin(async move {
                if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                    return Gate::Uncoordinated;
                }
                let mut board = self.board.0.lock().unwrap();
                match board.get(claim) {
                    Some((by, true)) => Gate::ByPeer(by.clone()),
                    Some((by, false)) if *by != self.me => Gate::Wait(Duration::from_millis(50)),
                    _ => {
                        board.insert(claim.to_string(), (self.me.clone(), false));
                        Gate::Deliver
                    }
                }
            })
        }

        fn delivered<'a>(&'a self, claim: &'a str, _keep_for: Duration) -> ClaimFuture<'a, ()> {
            Box::pin(async move {
                self.board
                    .0
                    .lock()
                    .unwrap()
                    .insert(claim.to_string(), (self.me.clone(), true));
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::testing::{Board, FakeClaims};
    use crate::alert::{Alert, AlertConfig, Alerter};
    use crate::core::{Event, Level};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// A replica: an alerter on its own store writing `.eml` files into `dir/name`, claiming on `board`.
    fn replica(
        name: &str,
        dir: &std::path::Path,
        board: &Board,
        down: &Arc<AtomicBool>,
    ) -> Alerter {
        let config: AlertConfig = toml::from_str(&format!(
            "group_wait = \"0s\"\n[[notifier]]\nkind = \"file\"\npath = {:?}\n",
            dir.join(name).display().to_string()
        ))
        .unwrap();
        let store = crate::store::Store::open_in_memory().unwrap();
        let alerter = Alerter::start(&config, store, &crate::metrics::Metrics::new()).unwrap();
        alerter.coordinate(Arc::new(FakeClaims {
            me: name.into(),
            board: board.clone(),
            down: down.clone(),
        }));
        alerter
    }

    /// The mails the replicas wrote, all together.
    fn mails(dir: &std::path::Path) -> usize {
        ["a", "b", "c"]
            .iter()
            .filter_map(|n| std::fs::read_dir(dir.join(n)).ok())
            .flat_map(|d| d.filter_map(Result::ok))
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .count()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn three_replicas_raising_the_same_alerts_send_each_once_and_fail_open_when_etcd_is_down()
    {
        let dir = tempfile::tempdir().unwrap();
        let (board, down) = (Board::default(), Arc::new(AtomicBool::new(false)));
        let replicas: Vec<Alerter> = ["a", "b", "c"]
            .iter()
            .map(|n| replica(n, dir.path(), &board, &down))
            .collect();
        for i in 0..5 {
            for r in &replicas {
                r.send(Alert::new(
                    Event::MonitorDown,
                    format!("site{i}"),
                    Level::Error,
                    format!("site{i} is down"),
                    "x",
                ));
            }
        }
        for r in &replicas {
            assert_eq!(r.flush_async(Duration::from_secs(10)).await.undelivered, 0);
        }
        assert_eq!(
            mails(dir.path()),
            5,
            "each alert once across the three replicas"
        );
        // etcd unreachable: every replica sends its own (a duplicate beats silence).
        down.store(true, std::sync::atomic::Ordering::SeqCst);
        for r in &replicas {
            r.send(Alert::new(
                Event::MonitorUp,
                "site0",
                Level::Notice,
                "site0 is up",
                "x",
            ));
        }
        for r in &replicas {
            assert_eq!(r.flush_async(Duration::from_secs(10)).await.undelivered, 0);
            r.stop(Duration::from_secs(1)).await;
        }
        assert_eq!(mails(dir.path()), 8);
    }

    #[test]
    fn claim_keys_are_safe_and_stable() {
        let a = claim_key("MonitorDown:My site/with spaces");
        assert!(a.starts_with("alerts/MonitorDown/"), "{a}");
        assert_eq!(a, claim_key("MonitorDown:My site/with spaces"));
        assert_ne!(a, claim_key("MonitorDown:My site/with spaces+more"));
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '/'),
            "{a}"
        );
        assert!(claim_key(":odd").starts_with("alerts/alert/"));
    }
}
