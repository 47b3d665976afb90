//! Storm control: when this machine, not the targets, is the problem, send one grouped alert.
//!
//! If the network of the monitoring machine goes, every target fails at once and the team would get one
//! mail per target. [`decide`] is the pure rule: the tracker events gathered over one storm window, the
//! number of targets failing right now and the connectivity probe's answer go in; the alerts to send come
//! out. Targets announced in a grouped alert are remembered in [`StormState`], so their recovery is grouped
//! too instead of fifty "up again" mails.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::monitor::config::StormConfig;
use crate::monitor::tracker::Event;

/// Which tracker events a grouped alert gathers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GroupKind {
    /// Many targets went down.
    Down,
    /// Targets of an earlier grouped alert are still down (reminders).
    StillDown,
    /// Targets of an earlier grouped alert are up again.
    Up,
}

/// An alert to send, after storm control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Alert {
    /// One target's event, as the tracker emitted it.
    Single {
        /// Index of the target in `monitor.target`.
        index: usize,
        /// The event.
        event: Event,
    },
    /// One alert for many targets.
    Grouped {
        /// What happened to them.
        kind: GroupKind,
        /// Indexes of the targets in `monitor.target`.
        targets: Vec<usize>,
        /// The subject line: "42 of 50 targets down — is this machine offline?".
        message: String,
    },
}

impl Alert {
    /// The stable event name: the tracker's (MonitorDown) or MonitorStorm, MonitorStormStillDown,
    /// MonitorStormOver for grouped alerts.
    pub fn name(&self) -> crate::core::Event {
        use crate::core::Event as E;
        match self {
            Alert::Single { event, .. } => event.name(),
            Alert::Grouped { kind, .. } => match kind {
                GroupKind::Down => E::MonitorStorm,
                GroupKind::StillDown => E::MonitorStormStillDown,
                GroupKind::Up => E::MonitorStormOver,
            },
        }
    }
}

/// What storm control remembers between windows: targets whose down was part of a grouped alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StormState {
    /// Indexes of targets announced in a grouped down alert and not up since.
    pub grouped: BTreeSet<usize>,
}

/// Is it a storm? More than `share` of `total` and at least `min_failing` failing, or the probe failed.
pub fn is_storm(
    failing_now: usize,
    total: usize,
    probe_ok: Option<bool>,
    settings: &StormConfig,
) -> bool {
    let share_exceeded = total > 0
        && failing_now >= settings.min_failing
        && failing_now as f64 > settings.share * total as f64;
    share_exceeded || probe_ok == Some(false)
}

/// Turns the events of one window into alerts. `failing_now`: targets whose last check failed; `probe_ok`:
/// the connectivity probe (None = not configured or not run). Pure apart from updating `state`.
pub fn decide(
    pending: &[(usize, Event)],
    failing_now: usize,
    total: usize,
    probe_ok: Option<bool>,
    state: &mut StormState,
    settings: &StormConfig,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let storm = is_storm(failing_now, total, probe_ok, settings);
    let mut downs = Vec::new();
    let mut still = Vec::new();
    let mut ups = Vec::new();
    for (index, event) in pending {
        let single = || Alert::Single {
            index: *index,
            event: event.clone(),
        };
        match event {
            Event::MonitorDown { .. } if storm => downs.push(*index),
            Event::MonitorStillDown { .. } if state.grouped.contains(index) => still.push(*index),
            Event::MonitorUp { .. } if state.grouped.remove(index) => ups.push(*index),
            _ => alerts.push(single()),
        }
    }
    if !downs.is_empty() {
        state.grouped.extend(downs.iter().copied());
        let why = if probe_ok == Some(false) {
            "the connectivity probe failed too: is this machine offline?"
        } else {
            "is this machine offline?"
        };
        alerts.push(Alert::Grouped {
            kind: GroupKind::Down,
            message: format!(
                "{} of {total} targets down — {why} ({} new)",
                failing_now.max(downs.len()),
                downs.len()
            ),
            targets: downs,
        });
    }
    if !still.is_empty() {
        alerts.push(Alert::Grouped {
            kind: GroupKind::StillDown,
            message: format!("{} targets still down since the storm", still.len()),
            targets: still,
        });
    }
    if !ups.is_empty() {
        alerts.push(Alert::Grouped {
            kind: GroupKind::Up,
            message: format!(
                "{} targets up again after the storm ({} still down)",
                ups.len(),
                state.grouped.len()
            ),
            targets: ups,
        });
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn down(i: usize) -> (usize, Event) {
        (
            i,
            Event::MonitorDown {
                since: SystemTime::UNIX_EPOCH,
                reason: "timeout after 10s".into(),
            },
        )
    }
    fn up(i: usize) -> (usize, Event) {
        (
            i,
            Event::MonitorUp {
                downtime: Duration::from_secs(60),
                last_failure: "x".into(),
            },
        )
    }
    fn still(i: usize) -> (usize, Event) {
        (
            i,
            Event::MonitorStillDown {
                since: SystemTime::UNIX_EPOCH,
                down_for: Duration::ZERO,
                reason: "x".into(),
            },
        )
    }
    fn names(alerts: &[Alert]) -> Vec<String> {
        alerts
            .iter()
            .map(|a| match a {
                Alert::Single { index, event } => format!("{}#{index}", event.name()),
                Alert::Grouped { targets, .. } => format!("{}{targets:?}", a.name()),
            })
            .collect()
    }

    #[test]
    fn storm_rule() {
        let s = StormConfig::default(); // share 0.5, min 5
        assert!(is_storm(42, 50, None, &s));
        assert!(
            !is_storm(25, 50, None, &s),
            "exactly half is not more than half"
        );
        assert!(!is_storm(3, 4, None, &s), "below min_failing");
        assert!(
            is_storm(1, 50, Some(false), &s),
            "the probe failing is a storm"
        );
        assert!(!is_storm(0, 0, Some(true), &s));
    }

    #[test]
    fn few_failures_alert_one_by_one() {
        let mut st = StormState::default();
        let got = decide(
            &[down(1), down(2), up(3)],
            2,
            50,
            Some(true),
            &mut st,
            &StormConfig::default(),
        );
        assert_eq!(
            names(&got),
            ["MonitorDown#1", "MonitorDown#2", "MonitorUp#3"]
        );
        assert!(st.grouped.is_empty());
    }

    #[test]
    fn a_storm_is_one_alert_then_its_recovery_is_one_alert() {
        let s = StormConfig::default();
        let mut st = StormState::default();
        let pending: Vec<_> = (0..42).map(down).collect();
        let got = decide(&pending, 42, 50, None, &mut st, &s);
        assert_eq!(got.len(), 1);
        let Alert::Grouped {
            message, targets, ..
        } = &got[0]
        else {
            panic!("grouped expected: {got:?}")
        };
        assert_eq!(
            message,
            "42 of 50 targets down — is this machine offline? (42 new)"
        );
        assert_eq!(targets.len(), 42);
        // next window: reminders of grouped targets are grouped, an unrelated one stays single
        let got = decide(&[still(1), still(2), still(45)], 42, 50, None, &mut st, &s);
        assert_eq!(
            names(&got),
            ["MonitorStillDown#45", "MonitorStormStillDown[1, 2]"]
        );
        // recovery: grouped ups are one alert; an unrelated up is single
        let mut pending: Vec<_> = (0..40).map(up).collect();
        pending.push(up(49));
        let got = decide(&pending, 2, 50, None, &mut st, &s);
        assert_eq!(got.len(), 2);
        assert_eq!(names(&got)[0], "MonitorUp#49");
        let Alert::Grouped {
            kind: GroupKind::Up,
            message,
            ..
        } = &got[1]
        else {
            panic!("{got:?}")
        };
        assert_eq!(
            message,
            "40 targets up again after the storm (2 still down)"
        );
    }

    #[test]
    fn a_failed_probe_groups_even_a_single_down() {
        let mut st = StormState::default();
        let got = decide(
            &[down(7)],
            1,
            50,
            Some(false),
            &mut st,
            &StormConfig::default(),
        );
        let Alert::Grouped { message, .. } = &got[0] else {
            panic!("{got:?}")
        };
        assert!(message.contains("connectivity probe failed"), "{message}");
    }
}
