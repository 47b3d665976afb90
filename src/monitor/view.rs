//! The monitor's live view: every target's latest state, reason, timings and uptime, written by the service
//! and read by the status page, the JSON API and `tend status`, never by a query per page view.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::check::{Phase, Phases};
use super::config::MonitorConfig;
use super::maintenance::Cover;
use super::series::Series;

/// Response times kept per target for the sparkline.
pub const SPARK: usize = 30;

/// One target as the page and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    /// Name from the config.
    pub name: String,
    /// What is checked (URL or host:port).
    pub what: String,
    /// up, down, unknown.
    pub state: &'static str,
    /// When the current state began (RFC 3339).
    pub since: Option<String>,
    /// Reason of the last check.
    pub reason: String,
    /// Last response time in milliseconds.
    pub response_ms: Option<u64>,
    /// Days until the certificate expires.
    pub cert_expiry_days: Option<i64>,
    /// Uptime percentages over 24 h, 7 d, 30 d (None until there is history).
    pub uptime: [Option<f64>; 3],
    /// Recent response times in milliseconds, oldest first.
    pub recent_ms: Vec<u64>,
    /// The last check's phases in milliseconds (`dns`, `connect`, `tls`, `ttfb`, `transfer`, `total`).
    pub phases: Option<Phases>,
    /// The phase the last check failed in, if it failed before an answer.
    pub failed_phase: Option<Phase>,
    /// The maintenance window or silence covering the target now: no alert is sent meanwhile.
    pub quiet: Option<Cover>,
    /// A down alert is held back until the quiet time ends.
    pub alert_held: bool,
    /// With `[cluster]`: the replica that checks it (with its zone), when known.
    pub checked_by: Option<String>,
    /// With `[cluster]`: the replicas that saw its current state ("down from tend-a and tend-c").
    pub seen_from: Vec<String>,
    /// Hourly phase means and daily uptime, for the charts.
    #[serde(skip)]
    pub series: Series,
}

/// A maintenance window as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    /// Its name.
    pub name: String,
    /// Its targets (names or globs).
    pub targets: Vec<String>,
    /// When: "every sun 02:00 Europe/Berlin for 2h" or the one-off dates.
    pub schedule: String,
    /// Open now, or when it opens next (RFC 3339), or "over".
    pub status: String,
    /// Why.
    pub reason: String,
}

/// A silence as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SilenceView {
    /// The target name or glob.
    pub target: String,
    /// Until when (RFC 3339).
    pub until: String,
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// The live view, shared with the web parts.
#[derive(Debug, Default)]
pub struct View {
    /// Targets in config order.
    pub targets: Vec<TargetView>,
    /// Schedule lag p50 and p99, seconds.
    pub lag: (f64, f64),
    /// The maintenance windows, with their state now.
    pub windows: Vec<WindowView>,
    /// The silences in force.
    pub silences: Vec<SilenceView>,
}

/// Shared handle to the live view.
pub type SharedView = Arc<RwLock<View>>;

/// What a target checks, as shown: its URL, `tcp://host:port` or `tls://host:port`.
pub fn what(t: &crate::monitor::TargetConfig) -> String {
    t.url
        .clone()
        .or_else(|| t.tcp.as_ref().map(|a| format!("tcp://{a}")))
        .or_else(|| t.tls.as_ref().map(|a| format!("tls://{a}")))
        .unwrap_or_default()
}

impl View {
    /// Every target of `config`, not checked yet.
    pub fn new(config: &MonitorConfig) -> View {
        View {
            targets: config
                .target
                .iter()
                .map(|t| TargetView {
                    name: t.name.clone(),
                    what: what(t),
                    state: "unknown",
                    since: None,
                    reason: "not checked yet".into(),
                    response_ms: None,
                    cert_expiry_days: None,
                    uptime: [None; 3],
                    recent_ms: Vec::new(),
                    phases: None,
                    failed_phase: None,
                    quiet: None,
                    alert_held: false,
                    checked_by: None,
                    seen_from: Vec::new(),
                    series: Series::default(),
                })
                .collect(),
            lag: (0.0, 0.0),
            windows: Vec::new(),
            silences: Vec::new(),
        }
    }
}
