//! A [`Probe`]: one target compiled once (URL parsed, regex built, timeout, source address and connection
//! mode resolved), and the body rules an HTTP answer must meet, checked purely on the bytes read.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::phase::Down;
use crate::core::Invalid;
use crate::monitor::config::{MonitorConfig, TargetConfig};

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
    /// The local address checks connect from (`source_address`), if set.
    pub source: Option<IpAddr>,
    /// HTTP checks reuse pooled connections (`reuse_connections = true`) instead of a fresh one each.
    pub reuse: bool,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Http(Box<HttpProbe>),
    Tcp { host: String, port: u16 },
    Tls { host: String, port: u16 },
}

#[derive(Debug, Clone)]
pub(super) struct HttpProbe {
    pub(super) url: Url,
    pub(super) method: Method,
    pub(super) headers: HeaderMap,
    pub(super) expect_status: Vec<u16>,
    pub(super) max_response_time: Option<Duration>,
    pub(super) body_contains: Option<String>,
    pub(super) body_matches: Option<regex::Regex>,
    pub(super) json: Option<(String, serde_json::Value)>,
    pub(super) max_redirects: u32,
    pub(super) max_body_bytes: u64,
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
            source: t.source_address.or(monitor.source_address),
            reuse: t.reuse_connections.unwrap_or(monitor.reuse_connections),
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

/// `host:port` split, brackets of an IPv6 literal removed.
pub(super) fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

impl HttpProbe {
    /// The body conditions, on the (possibly truncated) body.
    pub(super) fn check_body(&self, body: &[u8], truncated: bool) -> Result<(), Down> {
        let text = String::from_utf8_lossy(body);
        let note = if truncated {
            format!(" (first {} read)", fmt_bytes(body.len()))
        } else {
            String::new()
        };
        if let Some(needle) = &self.body_contains
            && !text.contains(needle.as_str())
        {
            return Err(Down::new(format!("body lacks '{needle}'{note}")));
        }
        if let Some(re) = &self.body_matches
            && !re.is_match(&text)
        {
            return Err(Down::new(format!(
                "body does not match /{}/{note}",
                re.as_str()
            )));
        }
        if let Some((pointer, expected)) = &self.json {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| Down::new(format!("body is not JSON{note}: {e}")))?;
            match value.pointer(pointer) {
                Some(found) if found == expected => {}
                Some(found) => {
                    return Err(Down::new(format!(
                        "JSON {pointer} is {found}, expected {expected}"
                    )));
                }
                None => return Err(Down::new(format!("JSON has no {pointer}"))),
            }
        }
        Ok(())
    }

    /// Whether the status is what the target expects (any 2xx when nothing is listed).
    pub(super) fn status_ok(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }

    /// A redirect that the check follows: 3xx except 304 and any status the target expects.
    pub(super) fn follows(&self, status: u16) -> bool {
        (300..400).contains(&status) && status != 304 && !self.expect_status.contains(&status)
    }
}

/// Bytes as a person reads them: "1 MiB", "64 KiB", "1000 bytes".
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

    fn down(reason: &str) -> Result<(), Down> {
        Err(Down::new(reason.to_string()))
    }

    #[test]
    fn body_rules_give_human_reasons() {
        let p = probe(|t| t.body_contains = Some("Welcome".into()));
        assert_eq!(p.check_body(b"Hello", false), down("body lacks 'Welcome'"));
        assert_eq!(
            p.check_body(b"Hello", true),
            down("body lacks 'Welcome' (first 5 bytes read)")
        );
        assert_eq!(p.check_body(b"oh Welcome", false), Ok(()));
        let p = probe(|t| t.body_matches = Some("^v[0-9]+$".into()));
        assert_eq!(p.check_body(b"v12", false), Ok(()));
        assert_eq!(
            p.check_body(b"vx", false),
            down("body does not match /^v[0-9]+$/")
        );
        let p = probe(|t| {
            t.json_pointer = Some("/status".into());
            t.json_equals = Some(serde_json::json!("ok"));
        });
        assert_eq!(p.check_body(br#"{"status":"ok"}"#, false), Ok(()));
        assert_eq!(
            p.check_body(br#"{"status":"bad"}"#, false),
            down(r#"JSON /status is "bad", expected "ok""#)
        );
        assert_eq!(p.check_body(br#"{}"#, false), down("JSON has no /status"));
        assert!(
            p.check_body(b"<html>", false)
                .is_err_and(|e| e.reason.starts_with("body is not JSON"))
        );
    }

    #[test]
    fn redirects_followed_unless_expected() {
        let p = probe(|_| {});
        assert!(p.follows(302));
        assert!(!p.follows(304));
        assert!(!p.follows(200));
        assert!(!probe(|t| t.expect_status = vec![302]).follows(302));
        assert!(p.status_ok(204) && !p.status_ok(302));
    }

    #[test]
    fn sizes_and_addresses_read_well() {
        assert_eq!(fmt_bytes(1024 * 1024), "1 MiB");
        assert_eq!(fmt_bytes(1000), "1000 bytes");
        assert_eq!(split_host_port("[::1]:443"), Some(("::1".into(), 443)));
    }

    #[test]
    fn source_and_reuse_come_from_the_target_or_the_section() {
        let mut monitor = MonitorConfig {
            source_address: Some("127.0.0.1".parse().expect("ip")),
            ..MonitorConfig::default()
        };
        let mut t = TargetConfig::new("t");
        t.url = Some("http://127.0.0.1/".into());
        let p = Probe::new(&t, &monitor).expect("compiles");
        assert_eq!((p.source, p.reuse), (monitor.source_address, false));
        t.source_address = Some("127.0.0.2".parse().expect("ip"));
        monitor.reuse_connections = true;
        monitor.source_address = None;
        let p = Probe::new(&t, &monitor).expect("compiles");
        assert_eq!((p.source, p.reuse), (t.source_address, true));
        t.reuse_connections = Some(false);
        assert!(!Probe::new(&t, &monitor).expect("compiles").reuse);
    }
}
