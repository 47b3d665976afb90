//! The checks: HTTP(S), TCP connect and TLS handshake, each bounded as a whole by its timeout.
//!
//! A [`Probe`] is a target compiled once (URL parsed, regex built, timeout resolved); a [`Checker`] holds
//! the one shared HTTP client (its connection pool is what makes 10,000 targets cheap) and the TLS config,
//! and turns a probe into an [`Outcome`]: up/down, a human reason, response time, status, certificate days.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;

use crate::core::Invalid;
use crate::monitor::config::{MonitorConfig, TargetConfig};
use crate::monitor::tls;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The target answered as expected.
    pub up: bool,
    /// Why, for a person: "HTTP 200", "HTTP 503", "timeout after 10s", "body lacks 'Welcome'".
    pub reason: String,
    /// From the start of the check to its verdict (the timeout when it timed out).
    pub response_time: Duration,
    /// The HTTP status of the final response, if one came.
    pub status: Option<u16>,
    /// Whole days until the server certificate expires (https and tls targets).
    pub cert_expiry_days: Option<i64>,
    /// When the check started.
    pub checked_at: SystemTime,
}

/// Why a check says down, for a person: "HTTP 503", "connection refused", "body lacks 'Welcome'".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Down(pub String);

impl From<&str> for Down {
    fn from(reason: &str) -> Down {
        Down(reason.to_string())
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

/// What a target checks, compiled from its config.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The target's name.
    pub name: String,
    /// The whole-check bound.
    pub timeout: Duration,
    /// How often to check.
    pub interval: Duration,
    /// Down below this many days of certificate validity.
    pub cert_min_days: Option<u32>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Http(Box<HttpProbe>),
    Tcp { host: String, port: u16 },
    Tls { host: String, port: u16 },
}

#[derive(Debug, Clone)]
struct HttpProbe {
    url: Url,
    method: Method,
    headers: HeaderMap,
    expect_status: Vec<u16>,
    max_response_time: Option<Duration>,
    body_contains: Option<String>,
    body_matches: Option<regex::Regex>,
    json: Option<(String, serde_json::Value)>,
    max_redirects: u32,
    max_body_bytes: u64,
}

impl Probe {
    /// Compiles a target; fails on what [`MonitorConfig::validate`] reports (run that first for all errors).
    pub fn new(t: &TargetConfig, monitor: &MonitorConfig) -> Result<Probe, Invalid> {
        let bad = |field: &str, message: String| {
            Invalid::new(format!("monitor.target {:?}.{field}", t.name), message)
        };
        let kind = if let Some(url) = &t.url {
            let url = Url::parse(url).map_err(|e| bad("url", format!("{url:?}: {e}")))?;
            let method = Method::from_bytes(t.method.as_bytes())
                .map_err(|e| bad("method", e.to_string()))?;
            let mut headers = HeaderMap::new();
            for (k, v) in &t.headers {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| bad("headers", format!("{k:?}: {e}")))?;
                let mut value = HeaderValue::from_str(v.expose())
                    .map_err(|e| bad("headers", format!("{k:?}: {e}")))?;
                value.set_sensitive(true);
                headers.insert(name, value);
            }
            let body_matches = match &t.body_matches {
                Some(p) => {
                    Some(regex::Regex::new(p).map_err(|e| bad("body_matches", e.to_string()))?)
                }
                None => None,
            };
            Kind::Http(Box::new(HttpProbe {
                url,
                method,
                headers,
                expect_status: t.expect_status.clone(),
                max_response_time: t.max_response_time,
                body_contains: t.body_contains.clone(),
                body_matches,
                json: t.json_pointer.clone().zip(t.json_equals.clone()),
                max_redirects: t.max_redirects,
                max_body_bytes: t.max_body_bytes,
            }))
        } else if let Some(addr) = t.tcp.as_deref().or(t.tls.as_deref()) {
            let (host, port) = split_host_port(addr)
                .ok_or_else(|| bad("tcp", format!("{addr:?} is not host:port")))?;
            if t.tcp.is_some() {
                Kind::Tcp { host, port }
            } else {
                Kind::Tls { host, port }
            }
        } else {
            return Err(bad("url", "set one of url, tcp, tls".into()));
        };
        Ok(Probe {
            name: t.name.clone(),
            timeout: t.timeout(monitor.timeout),
            interval: t.interval(monitor.interval),
            cert_min_days: t.cert_min_days,
            kind,
        })
    }

    /// Compiles every target of the section, in order.
    pub fn all(monitor: &MonitorConfig) -> Result<Vec<Probe>, Invalid> {
        monitor
            .target
            .iter()
            .map(|t| Probe::new(t, monitor))
            .collect()
    }
}

fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// What is known so far during a check, kept when the timeout cuts it short.
#[derive(Default)]
struct Partial {
    status: Option<u16>,
    cert_days: Option<i64>,
    phase: &'static str,
}

/// Runs checks; one per process, shared by every target (cheap to clone).
#[derive(Clone)]
pub struct Checker {
    client: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
}

impl Checker {
    /// Builds the shared client, trusting the system roots and the section's `ca_file` if set.
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

    /// Builds the shared client with extra trusted roots given as (PEM bytes, name for errors).
    pub fn with_extra_roots(pem: Option<(&[u8], &str)>) -> Result<Checker, CheckerError> {
        let roots = match pem {
            Some((pem, what)) => tls::parse_pem_bundle(pem, what)?,
            None => Vec::new(),
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_info(true)
            .user_agent(concat!("tend-monitor/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(120))
            .tcp_nodelay(true);
        if !roots.is_empty() {
            let certs = roots
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>();
            builder = builder.tls_certs_merge(certs.map_err(CheckerError::Http)?);
        }
        let client = builder.build().map_err(CheckerError::Http)?;
        Ok(Checker {
            client,
            tls: tls::client_config(roots)?,
        })
    }

    /// Runs one check, bounded as a whole by the probe's timeout. Never fails: a failure is a down outcome.
    pub async fn check(&self, probe: &Probe) -> Outcome {
        let checked_at = SystemTime::now();
        let started = Instant::now();
        let mut partial = Partial {
            phase: "connecting",
            ..Partial::default()
        };
        let verdict =
            tokio::time::timeout(probe.timeout, self.run(probe, &mut partial, checked_at)).await;
        let response_time = started.elapsed();
        let (up, reason) = match verdict {
            Ok(Ok(reason)) => (true, reason),
            Ok(Err(Down(reason))) => (false, reason),
            Err(_) => (
                false,
                format!(
                    "timeout after {} {}",
                    crate::core::duration::short(probe.timeout),
                    partial.phase
                ),
            ),
        };
        let mut outcome = Outcome {
            up,
            reason,
            response_time,
            status: partial.status,
            cert_expiry_days: partial.cert_days,
            checked_at,
        };
        if let Kind::Http(http) = &probe.kind
            && outcome.up
            && let Some(max) = http.max_response_time
            && response_time > max
        {
            outcome.up = false;
            outcome.reason = format!(
                "slow: {} (max {})",
                crate::core::duration::short(response_time),
                crate::core::duration::short(max)
            );
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
            Kind::Http(http) => self.http(http, partial, now).await,
            Kind::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await;
                stream
                    .map(|_| format!("connected to {host}:{port}"))
                    .map_err(|e| Down(tls::describe_io(&e)))
            }
            Kind::Tls { host, port } => {
                partial.phase = "during the TLS handshake";
                let days = tls::handshake(self.tls.clone(), host, *port, now)
                    .await
                    .map_err(|e| Down(e.to_string()))?;
                partial.cert_days = days;
                Ok(match days {
                    Some(d) => format!("certificate valid for {d} days"),
                    None => "TLS handshake ok".into(),
                })
            }
        }
    }

    async fn http(
        &self,
        p: &HttpProbe,
        partial: &mut Partial,
        now: SystemTime,
    ) -> Result<String, Down> {
        let mut url = p.url.clone();
        let mut method = p.method.clone();
        let mut seen = HashSet::from([url.clone()]);
        let mut hops = 0;
        let response = loop {
            let mut request = self.client.request(method.clone(), url.clone());
            if url.origin() == p.url.origin() {
                request = request.headers(p.headers.clone()); // never leak configured headers to another origin
            }
            partial.phase = "waiting for the response headers";
            let response = request
                .send()
                .await
                .map_err(|e| Down(describe_reqwest(&e)))?;
            if partial.cert_days.is_none() {
                partial.cert_days = response
                    .extensions()
                    .get::<reqwest::tls::TlsInfo>()
                    .and_then(|info| info.peer_certificate())
                    .and_then(|der| tls::days_until_expiry(der, now));
            }
            let status = response.status();
            partial.status = Some(status.as_u16());
            if !is_followed_redirect(status, &p.expect_status) {
                break response;
            }
            let Some(next) = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
            else {
                return Err(Down(format!(
                    "HTTP {} without a valid Location",
                    status.as_u16()
                )));
            };
            if !seen.insert(next.clone()) {
                return Err(Down(format!("redirect loop at {next}")));
            }
            hops += 1;
            if hops > p.max_redirects {
                return Err(Down(format!(
                    "too many redirects (more than {}) at {next}",
                    p.max_redirects
                )));
            }
            if status == StatusCode::SEE_OTHER || (status.as_u16() <= 302 && method == Method::POST)
            {
                method = Method::GET;
            }
            url = next;
        };
        let status = response.status();
        let ok_status = if p.expect_status.is_empty() {
            status.is_success()
        } else {
            p.expect_status.contains(&status.as_u16())
        };
        if !ok_status {
            return Err(Down(format!("HTTP {}", status.as_u16())));
        }
        partial.phase = "reading the body";
        let (body, truncated) = read_capped(response, p.max_body_bytes).await?;
        check_body(p, &body, truncated)?;
        Ok(format!("HTTP {}", status.as_u16()))
    }
}

fn is_followed_redirect(status: StatusCode, expect: &[u16]) -> bool {
    status.is_redirection()
        && status != StatusCode::NOT_MODIFIED
        && !expect.contains(&status.as_u16())
}

/// Reads at most `cap` bytes of the body; true when more was there (the rest is never read).
async fn read_capped(mut response: reqwest::Response, cap: u64) -> Result<(Vec<u8>, bool), Down> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Down(describe_reqwest(&e)))?
    {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
        if body.len() == cap {
            // Exactly full: one more read tells whether anything was left out.
            let more = response
                .chunk()
                .await
                .map_err(|e| Down(describe_reqwest(&e)))?;
            return Ok((body, more.is_some_and(|c| !c.is_empty())));
        }
    }
    Ok((body, false))
}

/// The body conditions, on the (possibly truncated) body.
fn check_body(p: &HttpProbe, body: &[u8], truncated: bool) -> Result<(), Down> {
    let text = String::from_utf8_lossy(body);
    let note = if truncated {
        format!(" (first {} read)", fmt_bytes(body.len()))
    } else {
        String::new()
    };
    if let Some(needle) = &p.body_contains
        && !text.contains(needle.as_str())
    {
        return Err(Down(format!("body lacks '{needle}'{note}")));
    }
    if let Some(re) = &p.body_matches
        && !re.is_match(&text)
    {
        return Err(Down(format!("body does not match /{}/{note}", re.as_str())));
    }
    if let Some((pointer, expected)) = &p.json {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Down(format!("body is not JSON{note}: {e}")))?;
        match value.pointer(pointer) {
            Some(found) if found == expected => {}
            Some(found) => {
                return Err(Down(format!(
                    "JSON {pointer} is {found}, expected {expected}"
                )));
            }
            None => return Err(Down(format!("JSON has no {pointer}"))),
        }
    }
    Ok(())
}

/// A short reason for a reqwest error: the innermost cause a person can act on.
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return tls::describe_rustls(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return tls::describe_io(io);
        }
        innermost = err.to_string();
        source = err.source();
    }
    if e.is_connect() {
        format!("connect failed: {innermost}")
    } else {
        innermost
    }
}

fn fmt_bytes(n: usize) -> String {
    if n >= 1024 * 1024 && n % (1024 * 1024) == 0 {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n % 1024 == 0 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(edit: impl FnOnce(&mut TargetConfig)) -> HttpProbe {
        let mut t = TargetConfig::new("t");
        t.url = Some("http://127.0.0.1/".into());
        edit(&mut t);
        match Probe::new(&t, &MonitorConfig::default())
            .expect("compiles")
            .kind
        {
            Kind::Http(h) => *h,
            _ => unreachable!("a url target is http"),
        }
    }

    #[test]
    fn body_rules_give_human_reasons() {
        let p = probe(|t| t.body_contains = Some("Welcome".into()));
        assert_eq!(
            check_body(&p, b"Hello", false),
            Err("body lacks 'Welcome'".into())
        );
        assert_eq!(
            check_body(&p, b"Hello", true),
            Err("body lacks 'Welcome' (first 5 bytes read)".into())
        );
        assert_eq!(check_body(&p, b"oh Welcome", false), Ok(()));
        let p = probe(|t| t.body_matches = Some("^v[0-9]+$".into()));
        assert_eq!(check_body(&p, b"v12", false), Ok(()));
        assert_eq!(
            check_body(&p, b"vx", false),
            Err("body does not match /^v[0-9]+$/".into())
        );
        let p = probe(|t| {
            t.json_pointer = Some("/status".into());
            t.json_equals = Some(serde_json::json!("ok"));
        });
        assert_eq!(check_body(&p, br#"{"status":"ok"}"#, false), Ok(()));
        assert_eq!(
            check_body(&p, br#"{"status":"bad"}"#, false),
            Err(r#"JSON /status is "bad", expected "ok""#.into())
        );
        assert_eq!(
            check_body(&p, br#"{}"#, false),
            Err("JSON has no /status".into())
        );
        assert!(
            check_body(&p, b"<html>", false).is_err_and(|e| e.0.starts_with("body is not JSON"))
        );
    }

    #[test]
    fn redirects_followed_unless_expected() {
        assert!(is_followed_redirect(StatusCode::FOUND, &[]));
        assert!(!is_followed_redirect(StatusCode::FOUND, &[302]));
        assert!(!is_followed_redirect(StatusCode::NOT_MODIFIED, &[]));
        assert!(!is_followed_redirect(StatusCode::OK, &[]));
    }

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(crate::core::duration::short(Duration::from_secs(10)), "10s");
        assert_eq!(
            crate::core::duration::short(Duration::from_millis(2345)),
            "2.3s"
        );
        assert_eq!(
            crate::core::duration::short(Duration::from_millis(250)),
            "250ms"
        );
        assert_eq!(fmt_bytes(1024 * 1024), "1 MiB");
        assert_eq!(split_host_port("[::1]:443"), Some(("::1".into(), 443)));
    }
}
