//! The scheduler's cluster part: which of a target's slots this replica checks (only the targets it owns, taking
//! over the shared tracker state when it becomes the owner), the confirmation of a change of state by other
//! replicas before it counts, the state shared after each change, and the answers this replica gives when
//! another asks it to check a target now. Without a cluster none of this runs: every target is checked here.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::check::{Checker, Outcome, Probe};
use super::share::{SharedTarget, Sharing, agreement, place};
use super::tracker::{Event, TrackerState};
use crate::metrics::Counter;

/// How long a confirmation may take beyond the check's own timeout.
const CONFIRM_SLACK: Duration = Duration::from_secs(2);

/// The cluster side of the scheduler, shared by every target task.
pub struct Spread {
    /// The cluster's view of the monitors.
    pub sharing: Arc<Sharing>,
    /// `tend_monitor_disagreements_total`.
    pub disagreements: Counter,
}

/// One target task's part: whether it owns the target, and what it last shared.
#[derive(Default)]
pub struct Ownership {
    owned: Option<bool>,
    published: Option<(TrackerState, Vec<String>)>,
}

/// What a check means once confirmed: the event that stands and where the state was seen from.
pub struct Confirmed {
    /// The event, if it stands (None when other replicas disagreed: the state before the check is restored).
    pub event: Option<Event>,
    /// Where the current state was seen from (empty alone).
    pub seen_from: Vec<String>,
}

impl Ownership {
    /// Whether this replica checks `name` at this slot. On becoming its owner (a start, a takeover) it goes on
    /// from the shared state, so an open outage is neither re-alerted nor forgotten. `failing` and `owned`
    /// count this replica's failing and owned targets (for storm control).
    pub fn turn(
        &mut self,
        spread: &Spread,
        name: &str,
        state: &mut TrackerState,
        failing: &AtomicUsize,
        owned: &AtomicUsize,
    ) -> bool {
        let now = spread.sharing.owns(name);
        let before = self.owned.replace(now);
        match (before, now) {
            (Some(false), false) | (Some(true), true) => {}
            (_, false) => {
                // It was counted as this replica's (every target is, from the start): let it go.
                owned.fetch_sub(1, Ordering::Relaxed);
                if state.is_failing() {
                    failing.fetch_sub(1, Ordering::Relaxed);
                }
            }
            (_, true) => {
                // A takeover (or the first slot): go on from the shared state.
                let was_counted = before.is_none() && state.is_failing();
                if before == Some(false) {
                    owned.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(shared) = spread.sharing.load(name) {
                    if shared.tracker != *state
                        && shared.checked_by != place(spread.sharing.me(), spread.sharing.zone())
                    {
                        tracing::info!(target_name = %name, from = %shared.checked_by,
                            state = %shared.tracker.state.as_str(), "Monitor target taken over");
                    }
                    *state = shared.tracker.clone();
                    self.published = Some((shared.tracker, shared.seen_from));
                }
                match (was_counted, state.is_failing()) {
                    (false, true) => _ = failing.fetch_add(1, Ordering::Relaxed),
                    (true, false) => _ = failing.fetch_sub(1, Ordering::Relaxed),
                    _ => {}
                }
            }
        }
        now
    }

    /// Shares the state after a check when it changed (a new state, a new streak start, new places).
    pub async fn publish(
        &mut self,
        spread: &Spread,
        name: &str,
        state: &TrackerState,
        outcome: &Outcome,
        seen_from: &[String],
    ) {
        let key = (
            state.state,
            state.since,
            state.failing_since,
            state.last_alert,
        );
        let changed = self.published.as_ref().is_none_or(|(p, places)| {
            (p.state, p.since, p.failing_since, p.last_alert) != key
                || (!seen_from.is_empty() && places.as_slice() != seen_from)
        });
        if !changed {
            return;
        }
        let sharing = &spread.sharing;
        let places = if seen_from.is_empty() {
            vec![place(sharing.me(), sharing.zone())]
        } else {
            seen_from.to_vec()
        };
        let shared = SharedTarget {
            name: name.to_string(),
            tracker: state.clone(),
            checked_by: place(sharing.me(), sharing.zone()),
            zone: sharing.zone().map(str::to_string),
            reason: outcome.reason.clone(),
            at: SystemTime::now(),
            seen_from: places.clone(),
        };
        sharing.save(&shared);
        self.published = Some((state.clone(), places));
    }
}

impl Spread {
    /// Asks other replicas to check `probe` when this check changed its state (down, or up again); restores
    /// `before` and drops the event when any of them saw otherwise.
    pub async fn confirm(
        &self,
        probe: &Probe,
        outcome: &Outcome,
        before: TrackerState,
        state: &mut TrackerState,
        event: Option<Event>,
    ) -> Confirmed {
        let changes = matches!(
            event,
            Some(Event::MonitorDown { .. } | Event::MonitorUp { .. })
        );
        if !changes || self.sharing.needed() < 2 {
            return Confirmed {
                event,
                seen_from: Vec::new(),
            };
        }
        let answers = self
            .sharing
            .confirm(&probe.name, probe.timeout + CONFIRM_SLACK)
            .await;
        let me = self.sharing.me();
        match agreement(me, self.sharing.zone(), outcome.up, &answers) {
            Ok(seen_from) => Confirmed { event, seen_from },
            Err(disagree) => {
                self.disagreements.inc();
                let others: Vec<String> = disagree
                    .iter()
                    .map(|a| format!("{} ({})", a.place(), a.reason))
                    .collect();
                tracing::info!(target_name = %probe.name, seen_here = %outcome.reason,
                    seen_elsewhere = %others.join(", "),
                    "Monitor replicas disagree; the state stays as it was");
                *state = before;
                Confirmed {
                    event: None,
                    seen_from: Vec::new(),
                }
            }
        }
    }
}

/// Answers the other replicas' requests to check a target now, until `shutdown`.
pub async fn answer_requests(
    spread: Arc<Spread>,
    probes: HashMap<String, Arc<Probe>>,
    checker: Checker,
    shutdown: CancellationToken,
) {
    let mut changes = spread.sharing.request_changes();
    let mut answered = BTreeSet::new();
    loop {
        for (key, ask) in spread.sharing.requests(&mut answered) {
            answered.insert(key.clone());
            let Some(probe) = probes.get(&ask.target).cloned() else {
                continue; // a target this replica's config does not have: the asker decides without it
            };
            let (spread, checker) = (spread.clone(), checker.clone());
            tokio::spawn(async move {
                let outcome = checker.check(&probe).await;
                spread
                    .sharing
                    .answer(&key, outcome.up, &outcome.reason)
                    .await;
            });
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
