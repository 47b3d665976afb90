//! `[[monitor.target]]`: one thing to watch, and the rules one target must follow (checked purely, each
//! problem named by its field).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default number of redirects an HTTP check follows.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;
/// Default cap on the body bytes an HTTP check reads (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default HTTP method.
pub const DEFAULT_METHOD: &str = "GET";

/// `[[monitor.target]]`: one thing to watch. Exactly one of `url`, `tcp`, `tls`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name, used in alerts, the status page and metrics.
    pub name: String,
    /// An http:// or https:// URL: an HTTP check (plus the certificate for https).
    #[serde(default)]
    pub url: Option<String>,
    /// `host:port`: a TCP connect check.
    #[serde(default)]
    pub tcp: Option<String>,
    /// `host:port`: a TLS handshake check (chain, hostname and days until the certificate expires).
    #[serde(default)]
    pub tls: Option<String>,
    /// HTTP method ("GET").
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra HTTP request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, crate::core::Secret>,
    /// Accepted HTTP statuses; empty = any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// A slower answer than this is down ("2s").
    #[serde(with = "crate::core::duration::option", default)]
    pub max_response_time: Option<Duration>,
    /// The body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The body must match this regular expression.
    #[serde(default)]
    pub body_matches: Option<String>,
    /// JSON pointer into the body (RFC 6901, e.g. "/status"), compared with `json_equals`.
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// The value `json_pointer` must point at (any TOML value: "ok", 1, true).
    #[serde(default)]
    pub json_equals: Option<serde_json::Value>,
    /// Redirects followed before the check is down (10); loops are detected and reported.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// At most this many body bytes are read (1 MiB); the rest is ignored.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Down when the certificate expires in fewer days than this (https and tls targets).
    #[serde(default)]
    pub cert_min_days: Option<u32>,
    /// Overrides `monitor.interval` for this target.
    #[serde(with = "crate::core::duration::option", default)]
    pub interval: Option<Duration>,
    /// Overrides `monitor.timeout` for this target.
    #[serde(with = "crate::core::duration::option", default)]
    pub timeout: Option<Duration>,
    /// Overrides `monitor.reuse_connections` for this target (HTTP only).
    #[serde(default)]
    pub reuse_connections: Option<bool>,
    /// Overrides `monitor.source_address`: the local IP this target's checks connect from.
    #[serde(default)]
    pub source_address: Option<IpAddr>,
}

impl TargetConfig {
    /// A target with every optional field at its default (for tests and generated configs).
    pub fn new(name: impl Into<String>) -> Self {
        TargetConfig {
            name: name.into(),
            url: None,
            tcp: None,
            tls: None,
            method: default_method(),
            headers: BTreeMap::new(),
            expect_status: Vec::new(),
            max_response_time: None,
            body_contains: None,
            body_matches: None,
            json_pointer: None,
            json_equals: None,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            cert_min_days: None,
            interval: None,
            timeout: None,
            reuse_connections: None,
            source_address: None,
        }
    }

    /// This target's interval: its own or the section's.
    pub fn interval(&self, section: Duration) -> Duration {
        self.interval.unwrap_or(section)
    }

    /// This target's timeout: its own or the section's.
    pub fn timeout(&self, section: Duration) -> Duration {
        self.timeout.unwrap_or(section)
    }

    fn has_http_only_fields(&self) -> bool {
        self.method != DEFAULT_METHOD
            || !self.headers.is_empty()
            || !self.expect_status.is_empty()
            || self.body_contains.is_some()
            || self.body_matches.is_some()
            || self.json_pointer.is_some()
            || self.json_equals.is_some()
    }
}

impl TargetConfig {
    /// The problems of this target, as (field, message).
    pub fn problems(&self, interval: Duration, timeout: Duration) -> Vec<(&'static str, String)> {
        let t = self;
        let mut errors = Vec::new();
        let kinds = [t.url.is_some(), t.tcp.is_some(), t.tls.is_some()]
            .iter()
            .filter(|k| **k)
            .count();
        if kinds != 1 {
            errors.push((
                "url",
                format!("set exactly one of url, tcp, tls (found {kinds})"),
            ));
        }
        if let Some(url) = &t.url {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                Ok(u) => errors.push((
                    "url",
                    format!(
                        "{url:?} must be http:// or https:// with a host, not {}",
                        u.scheme()
                    ),
                )),
                Err(e) => errors.push(("url", format!("{url:?} is not a URL: {e}"))),
            }
        } else if t.has_http_only_fields() {
            errors.push((
                "url",
                "method, headers, expect_status and body_* / json_* only apply to url targets"
                    .into(),
            ));
        }
        for (field, value) in [("tcp", &t.tcp), ("tls", &t.tls)] {
            if let Some(message) = value.as_deref().and_then(host_port_problem) {
                errors.push((field, message));
            }
        }
        if t.cert_min_days.is_some() && t.tcp.is_some() {
            errors.push((
                "cert_min_days",
                "a tcp target has no certificate; use tls = \"host:port\"".into(),
            ));
        }
        if t.cert_min_days.is_some() && t.url.as_deref().is_some_and(|u| u.starts_with("http:")) {
            errors.push(("cert_min_days", "an http:// URL has no certificate".into()));
        }
        if reqwest::Method::from_bytes(t.method.as_bytes()).is_err() {
            errors.push(("method", format!("{:?} is not an HTTP method", t.method)));
        }
        for (name, value) in &t.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(("headers", format!("{name:?} is not a valid header name")));
            } else if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                errors.push((
                    "headers",
                    format!("the value of {name:?} is not a valid header value"),
                ));
            }
        }
        if let Some(bad) = t.expect_status.iter().find(|s| !(100..=599).contains(*s)) {
            errors.push((
                "expect_status",
                format!("{bad} is not an HTTP status (100..=599)"),
            ));
        }
        if let Some(pattern) = &t.body_matches
            && let Err(e) = regex::Regex::new(pattern)
        {
            errors.push(("body_matches", format!("bad regex {pattern:?}: {e}")));
        }
        match (&t.json_pointer, &t.json_equals) {
            (Some(p), Some(_)) if !(p.is_empty() || p.starts_with('/')) => errors.push((
                "json_pointer",
                format!("{p:?} must start with '/' (RFC 6901)"),
            )),
            (Some(_), None) => {
                errors.push(("json_equals", "json_pointer needs json_equals".into()))
            }
            (None, Some(_)) => {
                errors.push(("json_pointer", "json_equals needs json_pointer".into()))
            }
            _ => {}
        }
        if t.max_body_bytes == 0 {
            errors.push(("max_body_bytes", "must be at least 1".into()));
        }
        let (interval, timeout) = (t.interval(interval), t.timeout(timeout));
        if t.interval.is_some_and(|i| i.is_zero()) {
            errors.push(("interval", "must be more than 0s".into()));
        }
        if t.timeout.is_some_and(|i| i.is_zero()) {
            errors.push(("timeout", "must be more than 0s".into()));
        }
        let overridden = t.interval.is_some() || t.timeout.is_some();
        if overridden && timeout >= interval && !interval.is_zero() {
            errors.push((
                "timeout",
                format!(
                    "{} must be below the interval {}",
                    fmt_dur(timeout),
                    fmt_dur(interval)
                ),
            ));
        }
        if let Some(max) = t.max_response_time
            && max >= timeout
        {
            errors.push((
                "max_response_time",
                format!(
                    "{} must be below the timeout {}",
                    fmt_dur(max),
                    fmt_dur(timeout)
                ),
            ));
        }
        errors
    }
}

impl TargetConfig {
    /// The host this target connects to, when it is an IP literal (its family must match `source_address`).
    fn literal_ip(&self) -> Option<IpAddr> {
        let host = match (&self.url, self.tcp.as_deref().or(self.tls.as_deref())) {
            (Some(url), _) => reqwest::Url::parse(url).ok()?.host_str()?.to_string(),
            (None, Some(addr)) => addr.rsplit_once(':')?.0.to_string(),
            (None, None) => return None,
        };
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }

    /// The problems of the connection settings in force for this target (its own or the section's).
    pub fn connection_problems(
        &self,
        source: Option<IpAddr>,
        reuse: bool,
    ) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let family = |ip: &IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        if let (Some(source), Some(target)) = (source, self.literal_ip())
            && source.is_ipv4() != target.is_ipv4()
        {
            errors.push((
                "source_address",
                format!(
                    "{source} is {} but the target {target} is {}: use a source address of the same family",
                    family(&source),
                    family(&target)
                ),
            ));
        }
        if reuse && source.is_some() && self.url.is_some() {
            errors.push((
                "source_address",
                "applies to fresh connections only: set reuse_connections = false for this target"
                    .into(),
            ));
        }
        if self.reuse_connections.is_some() && self.url.is_none() {
            errors.push((
                "reuse_connections",
                "only url targets pool connections; tcp and tls checks always connect afresh"
                    .into(),
            ));
        }
        errors
    }
}

/// The problem with a `host:port` value (a non-empty host and a port number), if any.
pub(super) fn host_port_problem(value: &str) -> Option<String> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => None,
        _ => Some(format!(
            "{value:?} must be host:port, e.g. \"example.com:443\""
        )),
    }
}

fn fmt_dur(d: Duration) -> String {
    crate::core::duration::exact(d)
}

fn default_method() -> String {
    DEFAULT_METHOD.to_string()
}
fn default_max_redirects() -> u32 {
    DEFAULT_MAX_REDIRECTS
}
fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
