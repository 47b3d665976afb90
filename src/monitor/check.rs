//! The checks: HTTP(S), TCP connect and TLS handshake, each bounded as a whole by its timeout and timed
//! phase by phase.
//!
//! A check is a new visitor: it resolves, connects and (for TLS) handshakes afresh ([`super::fresh`]), so a
//! site that stops accepting connections is down at its next check whatever older connections still answer,
//! and the certificate checked is the one presented in that check. `reuse_connections = true` opts an HTTP
//! target back into the shared connection pool ([`super::pooled`]). The time of a check is split into
//! consecutive [`Phase`]s (DNS, connect, TLS, time to first byte, transfer) that add up to its total, and a
//! check that fails says in which phase ("connect: connection refused").

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde::{Serialize, Serializer};

use super::probe::{HttpProbe, Kind};
use crate::core::duration::short;
use crate::monitor::config::MonitorConfig;
use crate::monitor::{fresh, pooled, tls};

pub use super::probe::Probe;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The target answered as expected.
    pub up: bool,
    /// Why, for a person: "HTTP 200", "HTTP 503", "connect: connection refused", "body lacks 'Welcome'".
    pub reason: String,
    /// From the start of the check to its verdict (the timeout when it timed out).
    pub response_time: Duration,
    /// The HTTP status of the final response, if one came.
    pub status: Option<u16>,
    /// Whole days until the server certificate expires (https and tls targets).
    pub cert_expiry_days: Option<i64>,
    /// When the check started.
    pub checked_at: SystemTime,
    /// Where the time went: consecutive phases that add up to `response_time`.
    pub phases: Phases,
    /// The phase a check failed in; `None` when it is up or got an answer it did not like (a status, a body).
    pub failed_phase: Option<Phase>,
}

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
    fn doing(self) -> &'static str {
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

/// Errors building a [`Checker`].
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    /// The `ca_file` could not be read.
    #[error("cannot read the CA file {path}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS trust could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Http(#[source] reqwest::Error),
}

/// Measures consecutive phases: entering one closes the previous, so the phases partition the check.
#[derive(Debug)]
pub(super) struct Stopwatch {
    mark: Instant,
    current: Phase,
    phases: Phases,
}

impl Stopwatch {
    fn new(start: Instant) -> Stopwatch {
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

    fn finish(&mut self, end: Instant) -> Phases {
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

/// Runs checks; one per process, shared by every target (cheap to clone).
#[derive(Clone)]
pub struct Checker {
    pub(super) pooled: reqwest::Client,
    /// Bare `tls` checks: no ALPN, no session resumption (each handshake shows the certificate).
    pub(super) tls: Arc<rustls::ClientConfig>,
    /// Fresh HTTPS connections: ALPN `http/1.1`, no session resumption.
    pub(super) https: Arc<rustls::ClientConfig>,
}

impl Checker {
    /// Builds the checker, trusting the system roots and the section's `ca_file` if set.
    pub fn new(config: &MonitorConfig) -> Result<Checker, CheckerError> {
        let pem = match &config.ca_file {
            Some(path) => Some((
                std::fs::read(path).map_err(|source| CheckerError::CaFile {
                    path: path.display().to_string(),
                    source,
                })?,
                path.display().to_string(),
            )),
            None => None,
        };
        Checker::with_extra_roots(pem.as_ref().map(|(b, p)| (b.as_slice(), p.as_str())))
    }

    /// Builds the checker with extra trusted roots given as (PEM bytes, name for errors).
    pub fn with_extra_roots(pem: Option<(&[u8], &str)>) -> Result<Checker, CheckerError> {
        let roots = match pem {
            Some((pem, what)) => tls::parse_pem_bundle(pem, what)?,
            None => Vec::new(),
        };
        let configs = tls::client_configs(roots)?;
        Ok(Checker {
            pooled: pooled::client(configs.pooled)?,
            tls: configs.tls,
            https: configs.https,
        })
    }

    /// Runs one check, bounded as a whole by the probe's timeout. Never fails: a failure is a down outcome.
    pub async fn check(&self, probe: &Probe) -> Outcome {
        let checked_at = SystemTime::now();
        let started = Instant::now();
        let mut partial = Partial {
            status: None,
            cert_days: None,
            watch: Stopwatch::new(started),
        };
        let verdict =
            tokio::time::timeout(probe.timeout, self.run(probe, &mut partial, checked_at)).await;
        let ended = Instant::now();
        let phases = partial.watch.finish(ended);
        let response_time = ended.saturating_duration_since(started);
        let (up, reason, failed_phase) = match verdict {
            Ok(Ok(reason)) => (true, reason, None),
            Ok(Err(down)) => (false, down.to_string(), down.phase),
            Err(_) => {
                let phase = partial.watch.current();
                let reason = format!("timeout after {} {}", short(probe.timeout), phase.doing());
                (false, Down::at(phase, reason).to_string(), Some(phase))
            }
        };
        let mut outcome = Outcome {
            up,
            reason,
            response_time,
            status: partial.status,
            cert_expiry_days: partial.cert_days,
            checked_at,
            phases,
            failed_phase,
        };
        if let Kind::Http(http) = &probe.kind
            && outcome.up
            && let Some(max) = http.max_response_time
            && response_time > max
        {
            outcome.up = false;
            outcome.reason = format!("slow: {} (max {})", short(response_time), short(max));
        }
        if outcome.up
            && let (Some(min), Some(days)) = (probe.cert_min_days, outcome.cert_expiry_days)
            && days < i64::from(min)
        {
            outcome.up = false;
            outcome.reason = format!("certificate expires in {days} days");
        }
        outcome
    }

    async fn run(
        &self,
        probe: &Probe,
        partial: &mut Partial,
        now: SystemTime,
    ) -> Result<String, Down> {
        match &probe.kind {
            Kind::Http(http) if probe.reuse => follow(&pooled::Pooled(self), http, partial).await,
            Kind::Http(http) => {
                let fresh = fresh::Fresh {
                    checker: self,
                    source: probe.source,
                    now,
                };
                follow(&fresh, http, partial).await
            }
            Kind::Tcp { host, port } => {
                fresh::dial(host, *port, probe.source, &mut partial.watch).await?;
                Ok(format!("connected to {host}:{port}"))
            }
            Kind::Tls { host, port } => {
                let tcp = fresh::dial(host, *port, probe.source, &mut partial.watch).await?;
                fresh::handshake(self.tls.clone(), host, tcp, partial, now).await?;
                Ok(match partial.cert_days {
                    Some(d) => format!("certificate valid for {d} days"),
                    None => "TLS handshake ok".into(),
                })
            }
        }
    }
}

/// The answer to one request: its status, its `Location` and the rest of it (the body, unread).
pub(super) struct Head<R> {
    pub(super) status: u16,
    pub(super) location: Option<String>,
    pub(super) rest: R,
}

/// How an HTTP check sends its requests: a fresh connection each, or the shared pool.
pub(super) trait Transport {
    /// The unread rest of a response.
    type Rest;

    /// Sends one request and waits for the response headers (the stopwatch is at DNS on entry).
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        headers: Option<&HeaderMap>,
        partial: &mut Partial,
    ) -> Result<Head<Self::Rest>, Down>;

    /// Reads the body: at most `cap` bytes are kept; true when more came (the rest is not read).
    async fn body(
        &self,
        rest: Self::Rest,
        cap: usize,
        partial: &mut Partial,
    ) -> Result<(Vec<u8>, bool), Down>;
}

/// An HTTP check over `transport`: follows redirects (each hop a new request), checks status and body.
async fn follow<T: Transport>(
    transport: &T,
    p: &HttpProbe,
    partial: &mut Partial,
) -> Result<String, Down> {
    let mut url = p.url.clone();
    let mut method = p.method.clone();
    let mut seen = std::collections::HashSet::from([url.clone()]);
    let mut hops = 0;
    let head = loop {
        if hops > 0 {
            partial.watch.enter(Phase::Dns);
        }
        // Never leak configured headers (credentials) to another origin.
        let headers = (url.origin() == p.url.origin()).then_some(&p.headers);
        let head = transport.send(&method, &url, headers, partial).await?;
        partial.status = Some(head.status);
        if !p.follows(head.status) {
            break head;
        }
        let Some(next) = head.location.as_deref().and_then(|l| url.join(l).ok()) else {
            return Err(Down::new(format!(
                "HTTP {} without a valid Location",
                head.status
            )));
        };
        if !seen.insert(next.clone()) {
            return Err(Down::new(format!("redirect loop at {next}")));
        }
        hops += 1;
        if hops > p.max_redirects {
            return Err(Down::new(format!(
                "too many redirects (more than {}) at {next}",
                p.max_redirects
            )));
        }
        if head.status == 303 || (head.status <= 302 && method == Method::POST) {
            method = Method::GET;
        }
        url = next;
    };
    if !p.status_ok(head.status) {
        return Err(Down::new(format!("HTTP {}", head.status)));
    }
    partial.watch.enter(Phase::Transfer);
    let cap = usize::try_from(p.max_body_bytes).unwrap_or(usize::MAX);
    let (body, truncated) = transport.body(head.rest, cap, partial).await?;
    p.check_body(&body, truncated)?;
    Ok(format!("HTTP {}", head.status))
}

/// A body read up to a cap: keeps the first `cap` bytes and notes whether more came.
pub(super) struct Capped {
    body: Vec<u8>,
    cap: usize,
    more: bool,
}

impl Capped {
    pub(super) fn new(cap: usize) -> Capped {
        Capped {
            body: Vec::new(),
            cap,
            more: false,
        }
    }

    /// Adds a chunk; false once more than `cap` bytes came (stop reading).
    pub(super) fn push(&mut self, chunk: &[u8]) -> bool {
        let room = self.cap - self.body.len();
        if chunk.len() > room {
            self.body.extend_from_slice(&chunk[..room]);
            self.more = true;
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }

    pub(super) fn finish(self) -> (Vec<u8>, bool) {
        (self.body, self.more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_body_keeps_the_first_bytes_and_notes_the_rest() {
        let mut c = Capped::new(4);
        assert!(c.push(b"ab"));
        assert!(c.push(b"cd"), "exactly full is not yet truncated");
        assert_eq!(c.finish(), (b"abcd".to_vec(), false));
        let mut c = Capped::new(4);
        assert!(c.push(b"abcd"));
        assert!(!c.push(b"e"));
        assert_eq!(c.finish(), (b"abcd".to_vec(), true));
    }

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
