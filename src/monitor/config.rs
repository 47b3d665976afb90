//! The `[monitor]` section: which targets to watch, how often, and when to call them down.
//!
//! Parsing touches nothing but the text; [`MonitorConfig::validate`] is pure and names the field of every
//! problem, so `tend check-config` can print them all at once. Clients are built later, by
//! [`crate::monitor::check::Checker::new`].

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::Invalid;

pub use super::target::TargetConfig;

/// Default check interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default bound on one whole check (DNS, connect, TLS, headers, body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of failed checks in a row before a target is down.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 2;
/// Default number of good checks in a row before a down target is up again.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
/// Default number of checks running at the same time.
pub const DEFAULT_CONCURRENCY: usize = 512;
fn default_share_checks() -> bool {
    true
}

/// Default share of targets failing at once that makes a storm.
pub const DEFAULT_STORM_SHARE: f64 = 0.5;
/// Default smallest number of failing targets that can make a storm.
pub const DEFAULT_STORM_MIN_FAILING: usize = 5;
/// Default time alerts are gathered before storm control decides.
pub const DEFAULT_STORM_WINDOW: Duration = Duration::from_secs(10);
/// Default time raw check results are kept.
pub const DEFAULT_RAW_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default time hourly aggregates are kept.
pub const DEFAULT_HOURLY_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// `[monitor]`: the website monitor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// How often each target is checked ("60s"); a target may override it.
    #[serde(with = "crate::core::duration", default = "default_interval")]
    pub interval: Duration,
    /// Bound on one whole check: DNS, connect, TLS, headers and body ("10s"). Must be below the interval.
    #[serde(with = "crate::core::duration", default = "default_timeout")]
    pub timeout: Duration,
    /// Failed checks in a row before a target is down and the team is told (2).
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Good checks in a row before a down target is up again (1).
    #[serde(default = "default_success_threshold")]
    pub success_threshold: u32,
    /// While a target stays down, remind the team this often ("4h"); unset = no reminder.
    #[serde(with = "crate::core::duration::option", default)]
    pub reminder: Option<Duration>,
    /// Checks running at the same time, across all targets (512).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Extra trusted CA certificates (PEM file), on top of the system roots: for an internal CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// HTTP checks reuse pooled keep-alive connections instead of opening a fresh one each (false). Cheaper,
    /// but it hides what a new visitor meets: a server that stops accepting connections stays "up" while an
    /// old connection still answers, and the certificate checked is the one of whenever that connection was
    /// made. A target may override it.
    #[serde(default)]
    pub reuse_connections: bool,
    /// The local IP address checks connect from (like blackbox_exporter's `source_ip_address`); it must be
    /// of the target's family (IPv4 or IPv6). Unset = the system picks. A target may override it.
    #[serde(default)]
    pub source_address: Option<IpAddr>,
    /// With `[cluster]`: each target is checked by one replica (chosen by rendezvous hashing of its name over
    /// the live members) and taken over by another when that one dies (true). False: every replica checks every
    /// target (more traffic, alerts still sent once).
    #[serde(default = "default_share_checks")]
    pub share_checks: bool,
    /// With `[cluster]`: how many replicas must see a target go down (or come back) before it is declared so;
    /// the owner asks `confirm - 1` others to check at once. Default: 2 while two or more replicas are alive,
    /// else 1.
    #[serde(default)]
    pub confirm: Option<usize>,
    /// Storm control: one grouped alert instead of one per target when many fail at once.
    #[serde(default)]
    pub storm: StormConfig,
    /// How long check results are kept.
    #[serde(default)]
    pub history: HistoryConfig,
    /// The targets (`[[monitor.target]]`).
    #[serde(default)]
    pub target: Vec<TargetConfig>,
}

/// `[monitor.storm]`: group alerts when this machine, not the targets, looks broken.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StormConfig {
    /// More than this share of targets failing at once (0.0..=1.0) is a storm (0.5).
    #[serde(default = "default_storm_share")]
    pub share: f64,
    /// ...and at least this many targets failing (5), so two small sites are never a storm.
    #[serde(default = "default_storm_min_failing")]
    pub min_failing: usize,
    /// Alerts are gathered this long before storm control decides how to send them ("10s").
    #[serde(with = "crate::core::duration", default = "default_storm_window")]
    pub window: Duration,
    /// Reliable `host:port` addresses for a connectivity probe (e.g. "1.1.1.1:443"): when none can be
    /// reached, new down alerts are grouped as "is this machine offline?". Empty = no probe.
    #[serde(default)]
    pub probe_hosts: Vec<String>,
}

/// `[monitor.history]`: retention of check results in the store.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Raw results (one row per check) are kept this long ("7d").
    #[serde(with = "crate::core::duration", default = "default_raw_retention")]
    pub raw_retention: Duration,
    /// Hourly aggregates (checks, failures, response times) are kept this long ("90d").
    #[serde(with = "crate::core::duration", default = "default_hourly_retention")]
    pub hourly_retention: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
            reminder: None,
            concurrency: DEFAULT_CONCURRENCY,
            ca_file: None,
            reuse_connections: false,
            source_address: None,
            share_checks: true,
            confirm: None,
            storm: StormConfig::default(),
            history: HistoryConfig::default(),
            target: Vec::new(),
        }
    }
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            share: DEFAULT_STORM_SHARE,
            min_failing: DEFAULT_STORM_MIN_FAILING,
            window: DEFAULT_STORM_WINDOW,
            probe_hosts: Vec::new(),
        }
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            raw_retention: DEFAULT_RAW_RETENTION,
            hourly_retention: DEFAULT_HOURLY_RETENTION,
        }
    }
}

impl MonitorConfig {
    /// Checks every rule that parsing cannot; pure (the `ca_file` is not opened here).
    pub fn validate(&self) -> Vec<Invalid> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: String| errors.push(Invalid::new(field, message));
        if self.interval.is_zero() {
            err("monitor.interval".into(), "must be more than 0s".into());
        }
        if self.timeout.is_zero() {
            err("monitor.timeout".into(), "must be more than 0s".into());
        }
        if self.timeout >= self.interval && !self.interval.is_zero() {
            err(
                "monitor.timeout".into(),
                format!(
                    "{} must be below the interval {}",
                    fmt_dur(self.timeout),
                    fmt_dur(self.interval)
                ),
            );
        }
        if self.failure_threshold == 0 {
            err(
                "monitor.failure_threshold".into(),
                "must be at least 1".into(),
            );
        }
        if self.success_threshold == 0 {
            err(
                "monitor.success_threshold".into(),
                "must be at least 1".into(),
            );
        }
        if self.reminder.is_some_and(|r| r.is_zero()) {
            err(
                "monitor.reminder".into(),
                "must be more than 0s (or left out)".into(),
            );
        }
        if self.concurrency == 0 {
            err("monitor.concurrency".into(), "must be at least 1".into());
        }
        if self.confirm == Some(0) {
            err(
                "monitor.confirm".into(),
                "must be at least 1 (1: the checking replica decides alone)".into(),
            );
        }
        if !(self.storm.share > 0.0 && self.storm.share <= 1.0) {
            err(
                "monitor.storm.share".into(),
                format!("must be in (0, 1], got {}", self.storm.share),
            );
        }
        if self.storm.window.is_zero() {
            err("monitor.storm.window".into(), "must be more than 0s".into());
        }
        for (i, host) in self.storm.probe_hosts.iter().enumerate() {
            if let Some(message) = super::target::host_port_problem(host) {
                err(format!("monitor.storm.probe_hosts[{i}]"), message);
            }
        }
        let mut names = HashSet::new();
        for (i, target) in self.target.iter().enumerate() {
            let at = if target.name.is_empty() {
                format!("monitor.target[{i}]")
            } else {
                format!("monitor.target[{i}] ({:?})", target.name)
            };
            if target.name.trim().is_empty() {
                err(format!("{at}.name"), "must not be empty".into());
            } else if !names.insert(target.name.as_str()) {
                err(
                    format!("{at}.name"),
                    format!("duplicate target name {:?}", target.name),
                );
            }
            let connection = (
                target.source_address.or(self.source_address),
                target.reuse_connections.unwrap_or(self.reuse_connections),
            );
            for (field, message) in target.connection_problems(connection.0, connection.1) {
                err(format!("{at}.{field}"), message);
            }
            for (field, message) in target.problems(self.interval, self.timeout) {
                err(format!("{at}.{field}"), message);
            }
        }
        errors
    }
}

/// The names of the targets of a `[monitor]` section, if there is one (what `[[maintenance]]` and
/// `tend silence` may name).
pub fn target_names(section: Option<&MonitorConfig>) -> Vec<&str> {
    section
        .iter()
        .flat_map(|m| &m.target)
        .map(|t| t.name.as_str())
        .collect()
}

fn fmt_dur(d: Duration) -> String {
    crate::core::duration::exact(d)
}

fn default_interval() -> Duration {
    DEFAULT_INTERVAL
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_failure_threshold() -> u32 {
    DEFAULT_FAILURE_THRESHOLD
}
fn default_success_threshold() -> u32 {
    DEFAULT_SUCCESS_THRESHOLD
}
fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}
fn default_storm_share() -> f64 {
    DEFAULT_STORM_SHARE
}
fn default_storm_min_failing() -> usize {
    DEFAULT_STORM_MIN_FAILING
}
fn default_storm_window() -> Duration {
    DEFAULT_STORM_WINDOW
}
fn default_raw_retention() -> Duration {
    DEFAULT_RAW_RETENTION
}
fn default_hourly_retention() -> Duration {
    DEFAULT_HOURLY_RETENTION
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MonitorConfig {
        #[derive(Deserialize)]
        struct File {
            monitor: MonitorConfig,
        }
        toml::from_str::<File>(text).expect("parses").monitor
    }

    fn fields(config: &MonitorConfig) -> Vec<String> {
        config
            .validate()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn the_design_example_parses_with_defaults() {
        let c = parse(
            r#"[monitor]
interval = "60s"
timeout = "10s"
[[monitor.target]]
name = "website"
url = "https://example.com/"
expect_status = [200]
max_response_time = "2s"
body_contains = "Welcome"
cert_min_days = 14
[[monitor.target]]
name = "db"
tcp = "127.0.0.1:5432"
interval = "30s"
"#,
        );
        assert_eq!(c.validate(), vec![]);
        assert_eq!(c.failure_threshold, 2);
        assert_eq!(c.success_threshold, 1);
        assert_eq!(c.target[0].max_body_bytes, 1024 * 1024);
        assert_eq!(c.target[0].max_response_time, Some(Duration::from_secs(2)));
        assert_eq!(c.target[1].interval(c.interval), Duration::from_secs(30));
        assert_eq!(c.target[1].timeout(c.timeout), Duration::from_secs(10));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = toml::from_str::<MonitorConfig>("intervall = \"5s\"").unwrap_err();
        assert!(e.to_string().contains("intervall"), "{e}");
        let e = toml::from_str::<MonitorConfig>(
            "[[target]]\nname = \"a\"\nurl = \"http://x/\"\nbody = \"x\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("body"), "{e}");
    }

    #[test]
    fn json_equals_takes_any_toml_value() {
        let c = parse(
            "[monitor]\n[[monitor.target]]\nname = \"api\"\nurl = \"http://127.0.0.1/\"\njson_pointer = \"/ok\"\njson_equals = true\n",
        );
        assert_eq!(c.target[0].json_equals, Some(serde_json::Value::Bool(true)));
        assert_eq!(c.validate(), vec![]);
    }

    #[test]
    fn validation_names_each_field() {
        let mut c = MonitorConfig {
            timeout: Duration::from_secs(60),
            ..MonitorConfig::default()
        };
        let mut a = TargetConfig::new("a");
        a.url = Some("ftp://example.com/".into());
        let mut dup = TargetConfig::new("a");
        dup.tcp = Some("example.com".into());
        let mut empty = TargetConfig::new("");
        empty.url = Some("http://x/".into());
        empty.tcp = Some("x:1".into());
        let mut re = TargetConfig::new("re");
        re.url = Some("http://x/".into());
        re.body_matches = Some("(unclosed".into());
        re.json_equals = Some(serde_json::json!(1));
        re.timeout = Some(Duration::from_secs(1));
        re.max_response_time = Some(Duration::from_secs(2));
        let mut tcp = TargetConfig::new("tcp");
        tcp.tcp = Some("x:22".into());
        tcp.body_contains = Some("x".into());
        tcp.cert_min_days = Some(3);
        let none = TargetConfig::new("none");
        c.target = vec![a, dup, empty, re, tcp, none];
        let got = fields(&c);
        let expect = [
            "monitor.target[0] (\"a\").url: \"ftp://example.com/\" must be http:// or https://",
            "monitor.timeout: 1m must be below the interval 1m",
            "monitor.target[1] (\"a\").name: duplicate target name \"a\"",
            "monitor.target[1] (\"a\").tcp: \"example.com\" must be host:port",
            "monitor.target[2].name: must not be empty",
            "monitor.target[2].url: set exactly one of url, tcp, tls (found 2)",
            "monitor.target[3] (\"re\").body_matches: bad regex \"(unclosed\"",
            "monitor.target[3] (\"re\").json_pointer: json_equals needs json_pointer",
            "monitor.target[3] (\"re\").max_response_time: 2s must be below the timeout 1s",
            "monitor.target[4] (\"tcp\").url: method, headers",
            "monitor.target[4] (\"tcp\").cert_min_days: a tcp target has no certificate",
            "monitor.target[5] (\"none\").url: set exactly one of url, tcp, tls (found 0)",
        ];
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e:?} in {got:#?}"
            );
        }
    }

    #[test]
    fn section_rules() {
        let c = MonitorConfig {
            failure_threshold: 0,
            success_threshold: 0,
            concurrency: 0,
            storm: StormConfig {
                share: 1.5,
                probe_hosts: vec!["nope".into()],
                ..StormConfig::default()
            },
            ..MonitorConfig::default()
        };
        let got = fields(&c);
        for f in [
            "monitor.failure_threshold",
            "monitor.success_threshold",
            "monitor.concurrency",
            "monitor.storm.share",
            "monitor.storm.probe_hosts[0]",
        ] {
            assert!(
                got.iter().any(|g| g.starts_with(f)),
                "missing {f} in {got:#?}"
            );
        }
    }

    #[test]
    fn source_address_must_match_the_targets_family() {
        let c = parse(
            r#"[monitor]
source_address = "::1"
[[monitor.target]]
name = "v4"
url = "http://127.0.0.1/"
[[monitor.target]]
name = "v6"
tcp = "[::1]:22"
[[monitor.target]]
name = "named"
url = "http://localhost/"
[[monitor.target]]
name = "pooled"
url = "http://[::1]/"
reuse_connections = true
[[monitor.target]]
name = "tls"
tls = "[::1]:443"
reuse_connections = false
"#,
        );
        let got = fields(&c);
        let expect = [
            "monitor.target[0] (\"v4\").source_address: ::1 is IPv6 but the target 127.0.0.1 is IPv4",
            "monitor.target[3] (\"pooled\").source_address: applies to fresh connections only",
            "monitor.target[4] (\"tls\").reuse_connections: only url targets pool connections",
        ];
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e:?} in {got:#?}"
            );
        }
        assert_eq!(got.len(), 3, "{got:#?}");
    }
}
