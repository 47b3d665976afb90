//! The checks: HTTP(S), TCP connect and TLS handshake, each bounded as a whole by its timeout and timed
//! phase by phase.
//!
//! A check is a new visitor: it resolves, connects and (for TLS) handshakes afresh ([`super::fresh`]), so a
//! site that stops accepting connections is down at its next check whatever older connections still answer,
//! and the certificate checked is the one presented in that check. `reuse_connections = true` opts an HTTP
//! target back into the shared connection pool ([`super::pooled`]). The time of a check is split into
//! consecutive [`Phase`]s (DNS, connect, TLS, time to first byte, transfer) that add up to its total, and a
//! check that fails says in which phase ("connect: connection refused").

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use serde::Serialize;

use super::phase::{Partial, Stopwatch};
use super::probe::{HttpProbe, Kind};
use super::transport::Transport;
use crate::core::duration::short;
use crate::monitor::config::MonitorConfig;
use crate::monitor::{fresh, pooled, tls};

pub use super::phase::{Down, Phase, Phases};
pub use super::probe::Probe;
pub use super::transport::CheckerError;

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
            Kind::Http(http) if probe.reuse => {
                follow(&pooled::Pooled(&self.pooled), http, partial).await
            }
            Kind::Http(http) => {
                let fresh = fresh::Fresh {
                    https: &self.https,
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
