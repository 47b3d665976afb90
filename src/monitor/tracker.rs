//! The per-target up/down state machine: pure, serialisable, and the only thing that decides to alert.
//!
//! The seed never cleared its "down" flag, so after one outage it mailed "UP" every minute and missed the
//! next outage. Here a target is `Unknown` until its first verdict, goes `Down` after `failure_threshold`
//! failed checks in a row (one [`Event::MonitorDown`]), and comes back `Up` after `success_threshold` good
//! checks in a row (one [`Event::MonitorUp`] with the downtime). The whole state is [`TrackerState`]
//! (serde), so the store can persist it and a restart neither re-alerts an ongoing outage nor forgets one.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No verdict yet (just configured, or not enough checks).
    #[default]
    Unknown,
    /// Answering as expected.
    Up,
    /// Failed `failure_threshold` checks in a row; the team was told.
    Down,
}

impl State {
    /// "unknown", "up", "down".
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        }
    }
}

/// When to change state and remind: from `[monitor]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Failures in a row to go down (at least 1).
    pub failure: u32,
    /// Successes in a row to come back up (at least 1).
    pub success: u32,
    /// Remind this often while down; `None` = never.
    pub reminder: Option<Duration>,
}

impl Thresholds {
    /// The thresholds of a `[monitor]` section.
    pub fn from_config(config: &crate::monitor::config::MonitorConfig) -> Self {
        Thresholds {
            failure: config.failure_threshold,
            success: config.success_threshold,
            reminder: config.reminder,
        }
    }
}

/// The persisted state of one target. `Default` is a target never checked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrackerState {
    /// Current state.
    pub state: State,
    /// When the current state began (for Down: the first failed check of the outage).
    pub since: Option<SystemTime>,
    /// Failed checks in a row, up to now.
    pub failures: u32,
    /// Good checks in a row, up to now.
    pub successes: u32,
    /// The first failed check of the current failure streak.
    pub failing_since: Option<SystemTime>,
    /// The last down alert or reminder sent for the current outage.
    pub last_alert: Option<SystemTime>,
    /// The reason of the last failed check.
    pub last_failure: Option<String>,
}

/// What the tracker wants the team to know. Names are the stable event names (alert key, log, metric).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum Event {
    /// The target went down: sent once per outage.
    MonitorDown {
        /// The first failed check of the outage.
        since: SystemTime,
        /// Why the last check failed ("HTTP 503").
        reason: String,
    },
    /// The target is still down after `reminder`.
    MonitorStillDown {
        /// The first failed check of the outage.
        since: SystemTime,
        /// How long it has been down.
        down_for: Duration,
        /// Why the last check failed.
        reason: String,
    },
    /// The target is up again: sent once per outage.
    MonitorUp {
        /// From the first failed check to the check that brought it back.
        downtime: Duration,
        /// The reason of the outage's last failure.
        last_failure: String,
    },
}

impl Event {
    /// The stable event name: MonitorDown, MonitorStillDown, MonitorUp.
    pub fn name(&self) -> crate::core::Event {
        match self {
            Event::MonitorDown { .. } => crate::core::Event::MonitorDown,
            Event::MonitorStillDown { .. } => crate::core::Event::MonitorStillDown,
            Event::MonitorUp { .. } => crate::core::Event::MonitorUp,
        }
    }
}

impl TrackerState {
    /// Feeds one check result observed at `now`; returns the event to alert on, if any. Pure.
    pub fn observe(
        &mut self,
        th: &Thresholds,
        up: bool,
        reason: &str,
        now: SystemTime,
    ) -> Option<Event> {
        if up {
            self.observe_success(th, now)
        } else {
            self.observe_failure(th, reason, now)
        }
    }

    fn observe_success(&mut self, th: &Thresholds, now: SystemTime) -> Option<Event> {
        self.failures = 0;
        self.failing_since = None;
        self.successes = self.successes.saturating_add(1);
        match self.state {
            State::Up => None,
            State::Unknown => {
                // A first good answer is not news: no event, just a verdict.
                self.enter(State::Up, now);
                None
            }
            State::Down if self.successes >= th.success.max(1) => {
                let downtime = self
                    .since
                    .and_then(|s| now.duration_since(s).ok())
                    .unwrap_or_default();
                let last_failure = self.last_failure.clone().unwrap_or_default();
                self.enter(State::Up, now);
                self.last_alert = None;
                Some(Event::MonitorUp {
                    downtime,
                    last_failure,
                })
            }
            State::Down => None,
        }
    }

    fn observe_failure(&mut self, th: &Thresholds, reason: &str, now: SystemTime) -> Option<Event> {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(reason.to_string());
        let first = *self.failing_since.get_or_insert(now);
        match self.state {
            State::Unknown | State::Up if self.failures >= th.failure.max(1) => {
                self.state = State::Down;
                self.since = Some(first);
                self.last_alert = Some(now);
                Some(Event::MonitorDown {
                    since: first,
                    reason: reason.to_string(),
                })
            }
            State::Unknown | State::Up => None,
            State::Down => {
                let since = self.since.unwrap_or(first);
                let due = match (th.reminder, self.last_alert) {
                    (Some(every), Some(last)) => now.duration_since(last).is_ok_and(|d| d >= every),
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if !due {
                    return None;
                }
                self.last_alert = Some(now);
                let down_for = now.duration_since(since).unwrap_or_default();
                Some(Event::MonitorStillDown {
                    since,
                    down_for,
                    reason: reason.to_string(),
                })
            }
        }
    }

    fn enter(&mut self, state: State, now: SystemTime) {
        self.state = state;
        self.since = Some(now);
    }

    /// True when the last check failed (even if not yet down): what storm control counts.
    pub fn is_failing(&self) -> bool {
        self.failures > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;
    fn at(s: u64) -> SystemTime {
        T0 + Duration::from_secs(s)
    }
    fn th(failure: u32, success: u32, reminder: Option<u64>) -> Thresholds {
        Thresholds {
            failure,
            success,
            reminder: reminder.map(Duration::from_secs),
        }
    }

    /// Runs a sequence of checks (one per 60 s) and returns (state after each, event names).
    fn run(th: &Thresholds, checks: &str) -> (String, Vec<String>) {
        let mut s = TrackerState::default();
        let mut states = String::new();
        let mut events = Vec::new();
        for (i, c) in checks.chars().enumerate() {
            let e = s.observe(th, c == '+', "HTTP 503", at(60 * i as u64));
            states.push(match s.state {
                State::Unknown => '?',
                State::Up => 'U',
                State::Down => 'D',
            });
            if let Some(e) = e {
                events.push(format!("{}@{i}", e.name()));
            }
        }
        (states, events)
    }

    #[test]
    fn transition_table() {
        // (failure, success, reminder s, checks, states, events)
        type Row = (
            u32,
            u32,
            Option<u64>,
            &'static str,
            &'static str,
            &'static [&'static str],
        );
        let table: &[Row] = &[
            (2, 1, None, "+", "U", &[]),
            (2, 1, None, "-", "?", &[]),
            (2, 1, None, "--", "?D", &["MonitorDown@1"]),
            (1, 1, None, "-", "D", &["MonitorDown@0"]),
            (2, 1, None, "+-+-+", "UUUUU", &[]),
            (
                2,
                1,
                None,
                "+--+",
                "UUDU",
                &["MonitorDown@2", "MonitorUp@3"],
            ),
            (
                2,
                1,
                None,
                "+-----+",
                "UUDDDDU",
                &["MonitorDown@2", "MonitorUp@6"],
            ),
            (
                2,
                2,
                None,
                "+--+-++",
                "UUDDDDU",
                &["MonitorDown@2", "MonitorUp@6"],
            ),
            (3, 1, None, "+--+---", "UUUUUUD", &["MonitorDown@6"]),
            // a second outage is reported again (the seed's bug)
            (
                2,
                1,
                None,
                "--+--+",
                "?DUUDU",
                &[
                    "MonitorDown@1",
                    "MonitorUp@2",
                    "MonitorDown@4",
                    "MonitorUp@5",
                ],
            ),
            // reminders every 120 s while down, none after recovery
            (
                2,
                1,
                Some(120),
                "--------+-+",
                "?DDDDDDDUUU",
                &[
                    "MonitorDown@1",
                    "MonitorStillDown@3",
                    "MonitorStillDown@5",
                    "MonitorStillDown@7",
                    "MonitorUp@8",
                ],
            ),
        ];
        for (f, s, r, checks, states, events) in table {
            let (got_states, got_events) = run(&th(*f, *s, *r), checks);
            assert_eq!(&got_states, states, "states of {checks} with f={f} s={s}");
            assert_eq!(
                &got_events, events,
                "events of {checks} with f={f} s={s} r={r:?}"
            );
        }
    }

    #[test]
    fn downtime_counts_from_the_first_failure() {
        let t = th(2, 1, None);
        let mut s = TrackerState::default();
        assert_eq!(s.observe(&t, true, "", at(0)), None);
        assert_eq!(s.observe(&t, false, "timeout after 10s", at(60)), None);
        assert_eq!(
            s.observe(&t, false, "HTTP 503", at(120)),
            Some(Event::MonitorDown {
                since: at(60),
                reason: "HTTP 503".into()
            })
        );
        assert_eq!(s.since, Some(at(60)));
        assert_eq!(
            s.observe(&t, true, "", at(600)),
            Some(Event::MonitorUp {
                downtime: Duration::from_secs(540),
                last_failure: "HTTP 503".into()
            })
        );
        assert_eq!((s.state, s.since), (State::Up, Some(at(600))));
    }

    #[test]
    fn a_restart_mid_outage_neither_realerts_nor_forgets() {
        let t = th(2, 1, None);
        let mut s = TrackerState::default();
        s.observe(&t, false, "HTTP 503", at(0));
        assert!(s.observe(&t, false, "HTTP 503", at(60)).is_some());
        let saved = serde_json::to_string(&s).expect("serialises");
        let mut restored: TrackerState = serde_json::from_str(&saved).expect("deserialises");
        assert_eq!(restored, s);
        assert_eq!(restored.observe(&t, false, "HTTP 503", at(3600)), None);
        assert!(
            matches!(restored.observe(&t, true, "", at(3660)), Some(Event::MonitorUp { downtime, .. }) if downtime == Duration::from_secs(3660))
        );
        // a restart mid-streak keeps the count
        let mut s = TrackerState::default();
        s.observe(&t, false, "x", at(0));
        let mut restored: TrackerState =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(restored.observe(&t, false, "x", at(60)).is_some());
    }

    proptest! {
        /// Over any sequence: downs and ups alternate, starting with a down; a down needs `failure` failures
        /// in a row right before it and an up `success` successes; the state is Down exactly between them.
        #[test]
        fn events_alternate_and_respect_thresholds(
            checks in proptest::collection::vec(any::<bool>(), 0..200),
            failure in 1u32..5, success in 1u32..5, reminder in proptest::option::of(60u64..600),
        ) {
            let t = th(failure, success, reminder);
            let mut s = TrackerState::default();
            let mut down = false;
            let mut run_fail = 0u32;
            let mut run_ok = 0u32;
            for (i, up) in checks.iter().enumerate() {
                if *up { run_ok += 1; run_fail = 0 } else { run_fail += 1; run_ok = 0 }
                let e = s.observe(&t, *up, "r", at(60 * i as u64));
                match e {
                    Some(Event::MonitorDown { .. }) => {
                        prop_assert!(!down);
                        prop_assert!(!*up && run_fail == failure);
                        down = true;
                    }
                    Some(Event::MonitorUp { .. }) => {
                        prop_assert!(down);
                        prop_assert!(*up && run_ok == success);
                        down = false;
                    }
                    Some(Event::MonitorStillDown { .. }) => prop_assert!(down && reminder.is_some() && !*up),
                    None => {}
                }
                prop_assert_eq!(s.state == State::Down, down);
                prop_assert_eq!(s.is_failing(), !*up);
                if !down && !*up { prop_assert!(run_fail < failure); }
            }
        }
    }
}
