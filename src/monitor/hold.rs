//! What happens to a target's alert during a maintenance window or a silence (pure).
//!
//! A down alert inside a window is held back, not lost: the outage is remembered, and when the window ends
//! with the target still down, the down alert goes out then (an outage that ended inside the window is never
//! told). Up alerts and reminders inside a window are dropped: checks still run and are recorded, the team
//! is just not paged for work it planned.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::tracker::Event;

/// A down alert held back: the outage it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The first failed check of the outage.
    pub since: SystemTime,
    /// Why the check failed.
    pub reason: String,
    /// When the alert was held.
    pub held_at: SystemTime,
}

/// What to do with one alert about one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Hold this down alert until the target is no longer covered.
    Hold(Held),
    /// Send nothing; `release` forgets a held outage (it ended inside the window).
    Drop {
        /// The target's held outage is over.
        release: bool,
    },
}

/// The verdict on `event` for a target that `covered` says is in a window or silenced now, `held` its held
/// outage if any.
pub fn decide(event: &Event, covered: bool, held: Option<&Held>, now: SystemTime) -> Verdict {
    match event {
        Event::MonitorDown { since, reason } if covered => Verdict::Hold(Held {
            since: *since,
            reason: reason.clone(),
            held_at: now,
        }),
        Event::MonitorDown { .. } => Verdict::Send,
        Event::MonitorStillDown { .. } if covered || held.is_some() => {
            Verdict::Drop { release: false }
        }
        Event::MonitorStillDown { .. } => Verdict::Send,
        Event::MonitorUp { .. } if held.is_some() => Verdict::Drop { release: true },
        Event::MonitorUp { .. } if covered => Verdict::Drop { release: false },
        Event::MonitorUp { .. } => Verdict::Send,
    }
}

/// The held outages whose target is no longer covered, by name: each is sent now if the target is still down,
/// and forgotten either way.
pub fn due(held: &BTreeMap<String, Held>, covered: impl Fn(&str) -> bool) -> Vec<&str> {
    held.keys()
        .map(String::as_str)
        .filter(|name| !covered(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn inside_a_window_downs_are_held_and_the_rest_dropped() {
        let down = Event::MonitorDown {
            since: at(10),
            reason: "HTTP 503".into(),
        };
        let still = Event::MonitorStillDown {
            since: at(10),
            down_for: Duration::from_secs(60),
            reason: "HTTP 503".into(),
        };
        let up = Event::MonitorUp {
            downtime: Duration::from_secs(60),
            last_failure: "HTTP 503".into(),
        };
        let held = Held {
            since: at(10),
            reason: "HTTP 503".into(),
            held_at: at(20),
        };
        assert_eq!(
            decide(&down, true, None, at(20)),
            Verdict::Hold(held.clone())
        );
        assert_eq!(decide(&down, false, None, at(20)), Verdict::Send);
        assert_eq!(
            decide(&still, true, None, at(80)),
            Verdict::Drop { release: false }
        );
        assert_eq!(
            decide(&still, false, Some(&held), at(80)),
            Verdict::Drop { release: false },
            "a reminder of a held outage waits for its release"
        );
        assert_eq!(decide(&still, false, None, at(80)), Verdict::Send);
        assert_eq!(
            decide(&up, true, Some(&held), at(90)),
            Verdict::Drop { release: true },
            "an outage that ended inside the window is never told"
        );
        assert_eq!(
            decide(&up, false, Some(&held), at(90)),
            Verdict::Drop { release: true },
            "nor one that ended before its release"
        );
        assert_eq!(
            decide(&up, true, None, at(90)),
            Verdict::Drop { release: false }
        );
        assert_eq!(decide(&up, false, None, at(90)), Verdict::Send);
    }

    #[test]
    fn held_outages_come_due_when_their_cover_ends() {
        let h = |s| Held {
            since: at(s),
            reason: "x".into(),
            held_at: at(s),
        };
        let held = BTreeMap::from([("a".to_string(), h(1)), ("b".to_string(), h(2))]);
        assert_eq!(due(&held, |n| n == "a"), vec!["b"]);
        assert_eq!(due(&held, |_| true), Vec::<&str>::new());
    }
}
