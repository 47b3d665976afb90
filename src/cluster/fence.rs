//! Fencing: how long this replica may still act on its lease, measured on the monotonic clock.
//!
//! A lease alone is not mutual exclusion: etcd times the TTL on its own clock, and a process that was paused
//! (SIGSTOP, a long GC-like stall, a frozen VM) resumes believing it still leads. So every lease carries a
//! [`LeaseClock`] whose deadline is *the instant the last successful keep-alive request was sent* + TTL −
//! margin; the server cannot have expired the lease before that. A [`Fence`] is one leadership term on
//! such a clock; [`Fence::check`] fails once the deadline has passed, the lease is known lost, or the term
//! ended, and writes made with it are also compared against the leader key's revision inside etcd.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The timings derived from the configured lease TTL (pure arithmetic, unit-tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The lease TTL asked of etcd.
    pub ttl: Duration,
    /// How long before the TTL this replica stops trusting its lease: max(1 s, TTL/5).
    pub margin: Duration,
    /// How often a healthy lease is refreshed: TTL/3.
    pub keepalive: Duration,
    /// How soon a failed keep-alive is tried again: TTL/6, at least 200 ms.
    pub retry: Duration,
    /// The bound on every single etcd call: min(TTL/2, 5 s).
    pub rpc: Duration,
}

impl Timing {
    /// The timings for a lease of `ttl`.
    pub fn for_lease(ttl: Duration) -> Timing {
        Timing {
            ttl,
            margin: margin(ttl),
            keepalive: ttl / 3,
            retry: (ttl / 6).max(Duration::from_millis(200)),
            rpc: (ttl / 2).min(Duration::from_secs(5)),
        }
    }
}

/// The safety margin kept before a lease of `ttl` runs out: max(1 s, TTL/5).
pub fn margin(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_secs(1))
}

/// Until when a lease of `ttl` renewed by a request sent at `sent_at` may be trusted: `sent_at + ttl − margin`.
/// The server renews on *receipt*, after `sent_at`, so it cannot expire the lease before `sent_at + ttl`.
pub fn deadline_after(sent_at: Instant, ttl: Duration) -> Instant {
    sent_at + ttl.saturating_sub(margin(ttl))
}

/// Why this replica may not act as the leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotLeader {
    /// The lease was not renewed in time: the deadline passed `ago`.
    #[error("leadership lease deadline passed {ago:?} ago (no keep-alive got through in time)")]
    Expired {
        /// How long ago the deadline passed.
        ago: Duration,
    },
    /// The leadership term is over (lease lost, resigned, or another replica leads).
    #[error("leadership term ended")]
    Ended,
}

/// The pure fence decision: may a term still act at `now`?
pub fn check_at(
    now: Instant,
    deadline: Instant,
    term_live: bool,
    lease_lost: bool,
) -> Result<(), NotLeader> {
    if !term_live || lease_lost {
        return Err(NotLeader::Ended);
    }
    if now >= deadline {
        return Err(NotLeader::Expired {
            ago: now - deadline,
        });
    }
    Ok(())
}

/// The monotonic deadline of one etcd lease, shared by the keep-alive loop (which extends it) and every
/// [`Fence`] won on that lease (which read it).
#[derive(Debug)]
pub struct LeaseClock {
    base: Instant,
    /// Nanoseconds after `base`; only ever grows.
    deadline_ns: AtomicU64,
    lost: AtomicBool,
    changed: watch::Sender<()>,
}

impl LeaseClock {
    /// A clock whose lease may be trusted until `deadline`.
    pub fn new(deadline: Instant) -> Arc<LeaseClock> {
        let base = Instant::now().min(deadline);
        Arc::new(LeaseClock {
            base,
            deadline_ns: AtomicU64::new(nanos(deadline - base)),
            lost: AtomicBool::new(false),
            changed: watch::Sender::new(()),
        })
    }

    /// The current deadline.
    pub fn deadline(&self) -> Instant {
        self.base + Duration::from_nanos(self.deadline_ns.load(Ordering::Acquire))
    }

    /// Moves the deadline to `deadline` if that is later (a late answer to an older request cannot shorten
    /// or wrongly lengthen it: the caller passes the deadline of the request the answer belongs to).
    pub fn extend(&self, deadline: Instant) {
        let ns = nanos(deadline.saturating_duration_since(self.base));
        self.deadline_ns.fetch_max(ns, Ordering::AcqRel);
        self.changed.send_replace(());
    }

    /// Marks the lease as gone for good (expired in etcd, revoked): every fence on it fails from now on.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::Release);
        self.changed.send_replace(());
    }

    /// Whether the lease is known to be gone.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Whether the lease may be trusted now.
    pub fn is_live(&self) -> bool {
        !self.is_lost() && Instant::now() < self.deadline()
    }

    /// A receiver that wakes on every extension and on loss.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Resolves once the lease may no longer be trusted (deadline passed or lost); re-reads the deadline
    /// each time it wakes, since keep-alives move it on.
    pub async fn ended(&self) {
        let mut changes = self.subscribe();
        loop {
            if !self.is_live() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline()) => {}
                _ = changes.changed() => {}
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Proof of one leadership term: the leader key, its create revision, and the lease clock it was won on.
/// Writes that must come from the leader go through [`crate::cluster::Cluster::put_fenced`], which checks it
/// locally and compares the leader key's create revision inside etcd.
#[derive(Debug, Clone)]
pub struct Fence {
    pub(crate) key: Vec<u8>,
    pub(crate) rev: i64,
    pub(crate) clock: Arc<LeaseClock>,
    pub(crate) term: Arc<AtomicBool>,
}

impl Fence {
    pub(crate) fn new(key: Vec<u8>, rev: i64, clock: Arc<LeaseClock>) -> Fence {
        Fence {
            key,
            rev,
            clock,
            term: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Ok while this term may act: its lease deadline has not passed on the monotonic clock, the lease is
    /// not known lost, and the term has not ended. Call it right before every leader-only action.
    pub fn check(&self) -> Result<(), NotLeader> {
        check_at(
            Instant::now(),
            self.clock.deadline(),
            self.term.load(Ordering::Acquire),
            self.clock.is_lost(),
        )
    }

    /// The leader key's create revision: the term's number, larger for every later term.
    pub fn rev(&self) -> i64 {
        self.rev
    }

    /// The leader key in etcd.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The instant after which [`Fence::check`] fails unless a keep-alive gets through first.
    pub fn deadline(&self) -> Instant {
        self.clock.deadline()
    }

    /// Ends the term: `check` fails from now on, for every clone.
    pub(crate) fn end(&self) {
        self.term.store(false, Ordering::Release);
    }
}

/// One granted lease and the clock that says how long it may be trusted.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The etcd lease id.
    pub(crate) id: i64,
    /// The TTL etcd granted.
    pub(crate) ttl: Duration,
    /// Its deadline.
    pub(crate) clock: Arc<LeaseClock>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn margin_is_a_fifth_but_at_least_a_second() {
        assert_eq!(margin(S(2)), S(1));
        assert_eq!(margin(S(5)), S(1));
        assert_eq!(margin(S(10)), S(2));
        assert_eq!(margin(S(60)), S(12));
    }

    #[test]
    fn timings_follow_the_ttl() {
        let t = Timing::for_lease(S(10));
        assert_eq!(t.keepalive, Duration::from_nanos(3_333_333_333));
        assert_eq!(t.rpc, S(5));
        assert_eq!(t.retry, Duration::from_nanos(1_666_666_666));
        let t = Timing::for_lease(S(3));
        assert_eq!((t.keepalive, t.rpc, t.retry), (S(1), MS(1500), MS(500)));
        assert_eq!(Timing::for_lease(S(60)).rpc, S(5), "capped at 5 s");
        assert_eq!(Timing::for_lease(S(1)).retry, MS(200), "retry floor");
    }

    #[test]
    fn deadline_counts_from_the_request_not_the_answer() {
        let sent = Instant::now();
        assert_eq!(deadline_after(sent, S(10)), sent + S(8));
        assert_eq!(deadline_after(sent, S(3)), sent + S(2));
        assert_eq!(
            deadline_after(sent, S(1)),
            sent,
            "a TTL within the margin is never trusted"
        );
    }

    #[test]
    fn check_fails_at_the_deadline_and_after_the_term() {
        let t0 = Instant::now();
        let d = t0 + S(2);
        assert_eq!(check_at(t0, d, true, false), Ok(()));
        assert_eq!(check_at(d - MS(1), d, true, false), Ok(()));
        assert_eq!(
            check_at(d, d, true, false),
            Err(NotLeader::Expired { ago: S(0) })
        );
        assert_eq!(
            check_at(d + S(5), d, true, false),
            Err(NotLeader::Expired { ago: S(5) })
        );
        assert_eq!(check_at(t0, d, false, false), Err(NotLeader::Ended));
        assert_eq!(check_at(t0, d, true, true), Err(NotLeader::Ended));
    }

    #[test]
    fn clock_only_moves_forward_and_loss_is_final() {
        let t0 = Instant::now();
        let clock = LeaseClock::new(t0 + S(5));
        clock.extend(t0 + S(3));
        assert_eq!(
            clock.deadline(),
            t0 + S(5),
            "an older answer does not shorten it"
        );
        clock.extend(t0 + S(7));
        assert_eq!(clock.deadline(), t0 + S(7));
        assert!(clock.is_live());
        let fence = Fence::new(b"k".to_vec(), 42, clock.clone());
        assert_eq!(fence.check(), Ok(()));
        assert_eq!(fence.rev(), 42);
        clock.lose();
        assert_eq!(fence.check(), Err(NotLeader::Ended));
        clock.extend(t0 + S(60));
        assert_eq!(fence.check(), Err(NotLeader::Ended));
    }

    #[test]
    fn ending_a_term_fails_every_clone() {
        let clock = LeaseClock::new(Instant::now() + S(5));
        let fence = Fence::new(b"k".to_vec(), 1, clock);
        let copy = fence.clone();
        fence.end();
        assert_eq!(copy.check(), Err(NotLeader::Ended));
    }

    #[tokio::test(start_paused = true)]
    async fn ended_follows_extensions_then_fires_at_the_deadline() {
        let t0 = Instant::now();
        let clock = LeaseClock::new(t0 + S(2));
        let c = clock.clone();
        let waiter = tokio::spawn(async move {
            c.ended().await;
            Instant::now()
        });
        tokio::time::sleep(S(1)).await;
        clock.extend(t0 + S(4));
        let ended_at = waiter.await.expect("waiter");
        assert_eq!(ended_at, t0 + S(4));
    }
}
