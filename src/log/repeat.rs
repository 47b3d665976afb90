//! Repeats of an error. While an error's alert (with its context lines) waits in the alert thread's queue, more
//! errors from the same call site go without their context lines: the outbox keeps only the first occurrence's
//! text in a dedup window and counts the rest, so the copies would be thrown away. A burst of one error then
//! costs its callers a count each, not a copy of the context each (and the memory a queue of copies holds).
//!
//! A call site is marked after its alert is queued and unmarked when the alert thread takes it; a mark older
//! than [`FRESH`] is ignored, so a repeat always follows its full alert by less than that, well inside any dedup
//! window, and lands on the row the full alert made. Sites share 64 slots; a site whose slot is taken by another
//! just sends full alerts. Only `tracing` call sites (static metadata) are tracked; `log` records always go full.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a mark lasts.
pub(super) const FRESH: Duration = Duration::from_millis(100);

const SLOTS: usize = 64;

/// One slot: the call site (its metadata's address) whose alert is queued, and since when.
#[derive(Clone, Copy)]
struct Slot {
    site: usize,
    at: Option<Instant>,
}

static QUEUED: [Mutex<Slot>; SLOTS] = [const { Mutex::new(Slot { site: 0, at: None }) }; SLOTS];

fn slot(site: usize) -> MutexGuard<'static, Slot> {
    let i = (site ^ (site >> 7) ^ (site >> 13)) % SLOTS;
    QUEUED[i].lock().unwrap_or_else(|p| p.into_inner())
}

/// True when an alert from `site` (0: untracked) was queued less than [`FRESH`] before `now` and not yet taken.
pub(super) fn queued(site: usize, now: Instant) -> bool {
    if site == 0 {
        return false;
    }
    let s = slot(site);
    s.site == site
        && s.at
            .is_some_and(|at| now.saturating_duration_since(at) < FRESH)
}

/// Marks `site`'s alert queued at `now`, unless its slot holds another site's fresh mark.
pub(super) fn mark(site: usize, now: Instant) {
    if site == 0 {
        return;
    }
    let mut s = slot(site);
    let stale =
        s.at.is_none_or(|at| now.saturating_duration_since(at) >= FRESH);
    if s.site == 0 || s.site == site || stale {
        *s = Slot {
            site,
            at: Some(now),
        };
    }
}

/// The alert thread took an alert from `site`: the next error there goes full again.
pub(super) fn taken(site: usize) {
    if site == 0 {
        return;
    }
    let mut s = slot(site);
    if s.site == site {
        *s = Slot { site: 0, at: None };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test uses its own addresses (tests share the slots and run in parallel).
    #[test]
    fn a_marked_site_is_queued_until_taken() {
        let (site, now) = (0x1000_0040, Instant::now());
        assert!(!queued(site, now));
        mark(site, now);
        assert!(queued(site, now + Duration::from_millis(5)));
        taken(site);
        assert!(!queued(site, now + Duration::from_millis(5)));
    }

    #[test]
    fn a_mark_goes_stale() {
        let (site, now) = (0x2000_0080, Instant::now());
        mark(site, now);
        assert!(queued(site, now + FRESH - Duration::from_millis(1)));
        assert!(!queued(site, now + FRESH));
        taken(site);
    }

    #[test]
    fn a_site_does_not_take_another_sites_fresh_slot() {
        let now = Instant::now();
        let a = 0x3000_0005;
        let b = a + SLOTS * 0x1_0000_0000; // another address hashing to the same slot
        assert_eq!(
            (a ^ (a >> 7) ^ (a >> 13)) % SLOTS,
            (b ^ (b >> 7) ^ (b >> 13)) % SLOTS
        );
        mark(a, now);
        mark(b, now);
        assert!(queued(a, now) && !queued(b, now));
        mark(b, now + FRESH);
        assert!(queued(b, now + FRESH) && !queued(a, now + FRESH));
        taken(a);
        assert!(queued(b, now + FRESH), "taking a does not unmark b");
        taken(b);
        assert!(!queued(0, now), "0 is never tracked");
    }
}
