//! How a check's time is split and how it fails: the consecutive [`Phase`]s a [`Stopwatch`] measures, the
//! [`Down`] that names the phase a check failed in, and the [`Partial`] result a timeout leaves behind. A leaf of
//! `monitor/`: the probes, both transports and the checker share it.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

/// A phase of a check, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Resolving the host name.
    Dns,
    /// The TCP connect.
    Connect,
    /// The TLS handshake.
    Tls,
    /// From sending the request to the response headers (time to first byte).
    Ttfb,
    /// Reading the body (and checking it).
    Transfer,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [
        Phase::Dns,
        Phase::Connect,
        Phase::Tls,
        Phase::Ttfb,
        Phase::Transfer,
    ];

    /// "dns", "connect", "tls", "ttfb", "transfer": the metric label and the reason's prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Ttfb => "ttfb",
            Phase::Transfer => "transfer",
        }
    }

    /// What the check was doing in this phase, for a timeout's reason.
    pub(super) fn doing(self) -> &'static str {
        match self {
            Phase::Dns => "resolving the host",
            Phase::Connect => "connecting",
            Phase::Tls => "during the TLS handshake",
            Phase::Ttfb => "waiting for the response headers",
            Phase::Transfer => "reading the body",
        }
    }

    /// The phase named `name` ("ttfb"), as stored in the history.
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each phase of a check took. They are consecutive, so they add up to the check's total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases([Duration; 5]);

impl Phases {
    /// The time spent in `phase`.
    pub fn get(&self, phase: Phase) -> Duration {
        self.0[phase as usize]
    }

    /// Adds `d` to `phase`.
    pub fn add(&mut self, phase: Phase, d: Duration) {
        self.0[phase as usize] += d;
    }

    /// The sum of every phase.
    pub fn total(&self) -> Duration {
        self.0.iter().sum()
    }
}

impl Serialize for Phases {
    /// Milliseconds with microsecond precision, per phase and the total: `{"dns": 0.012, ..., "total": 1.5}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let ms = |d: Duration| (d.as_micros() as f64) / 1000.0;
        let mut map = s.serialize_map(Some(6))?;
        for p in Phase::ALL {
            map.serialize_entry(p.as_str(), &ms(self.get(p)))?;
        }
        map.serialize_entry("total", &ms(self.total()))?;
        map.end()
    }
}

/// Why a check says down, for a person, and the phase it failed in if it failed before an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Down {
    /// The phase ("connect"), or `None` for an answer the target does not accept ("HTTP 503").
    pub phase: Option<Phase>,
    /// What happened: "connection refused", "HTTP 503", "body lacks 'Welcome'".
    pub reason: String,
}

impl Down {
    /// An answer the target does not accept.
    pub fn new(reason: String) -> Down {
        Down {
            phase: None,
            reason,
        }
    }

    /// A failure in `phase`.
    pub fn at(phase: Phase, reason: String) -> Down {
        Down {
            phase: Some(phase),
            reason,
        }
    }
}

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase {
            Some(p) => write!(f, "{p}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Measures consecutive phases: entering one closes the previous, so the phases partition the check.
#[derive(Debug)]
pub(super) struct Stopwatch {
    mark: Instant,
    current: Phase,
    phases: Phases,
}

impl Stopwatch {
    pub(super) fn new(start: Instant) -> Stopwatch {
        Stopwatch {
            mark: start,
            current: Phase::Dns,
            phases: Phases::default(),
        }
    }

    /// Ends the current phase now and starts `phase` (entering the same phase again adds to it).
    pub(super) fn enter(&mut self, phase: Phase) {
        let now = Instant::now();
        self.phases
            .add(self.current, now.saturating_duration_since(self.mark));
        self.mark = now;
        self.current = phase;
    }

    /// The phase running now.
    pub(super) fn current(&self) -> Phase {
        self.current
    }

    /// A failure in the phase running now.
    pub(super) fn fail(&self, reason: String) -> Down {
        Down::at(self.current, reason)
    }

    pub(super) fn finish(&mut self, end: Instant) -> Phases {
        self.phases
            .add(self.current, end.saturating_duration_since(self.mark));
        self.mark = end;
        self.phases
    }
}

/// What is known so far during a check, kept when the timeout cuts it short.
pub(super) struct Partial {
    pub(super) status: Option<u16>,
    pub(super) cert_days: Option<i64>,
    pub(super) watch: Stopwatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_partition_the_check_and_serialise_in_milliseconds() {
        let start = Instant::now();
        let mut w = Stopwatch::new(start);
        w.enter(Phase::Connect);
        w.enter(Phase::Ttfb);
        w.enter(Phase::Dns);
        let end = Instant::now() + Duration::from_millis(3);
        let phases = w.finish(end);
        assert_eq!(phases.total(), end - start);
        assert!(phases.get(Phase::Dns) >= Duration::from_millis(3));
        let mut p = Phases::default();
        p.add(Phase::Tls, Duration::from_micros(1500));
        let json = serde_json::to_value(p).expect("json");
        assert_eq!(json["tls"], 1.5);
        assert_eq!(json["total"], 1.5);
        assert_eq!(json["dns"], 0.0);
        assert_eq!(Phase::parse("ttfb"), Some(Phase::Ttfb));
    }

    #[test]
    fn a_failure_names_its_phase() {
        assert_eq!(
            Down::at(Phase::Connect, "connection refused".into()).to_string(),
            "connect: connection refused"
        );
        assert_eq!(Down::new("HTTP 503".into()).to_string(), "HTTP 503");
    }
}
