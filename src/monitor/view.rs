//! The monitor's live view: every target's latest state, reason, timings and uptime, written by the service
//! and read by the status page, the JSON API and `tend status`, never by a query per page view.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::config::MonitorConfig;

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
}

/// The live view, shared with the web parts.
#[derive(Debug, Default)]
pub struct View {
    /// Targets in config order.
    pub targets: Vec<TargetView>,
    /// Schedule lag p50 and p99, seconds.
    pub lag: (f64, f64),
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
                })
                .collect(),
            lag: (0.0, 0.0),
        }
    }
}
