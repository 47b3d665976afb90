//! The proactive logger: six levels on top of `tracing`, console lines, and the [`AlertLayer`] that mails every
//! error with the log lines that led to it.
//!
//! `notice` and `fatal` do not exist in `tracing`; they are `info` and `error` events carrying a marker field
//! (`notice = true`, `fatal = true`) that the layer reads back. Any program using `tracing` gets alerting by
//! adding one layer: `registry().with(AlertLayer::new(alerter, &config))`. The layer keeps a ring buffer of the
//! last `context_lines` lines of every level, debug too, even when they are not printed, and attaches it to the
//! alert. Events carrying `alert = false` (the alerter's own delivery failures) are printed but never alerted,
//! so a failing notifier cannot feed itself.
//!
//! Two more ways in: [`install_panic_hook`] makes every panic a `fatal` alert with its backtrace, and
//! [`bridge::install`] brings records of the `log` crate (what many dependencies use) to the same layer.
//!
//! Rooms: `layer.rs` the layer, `ring.rs` the context lines, `capture.rs` what an error hands the alert thread,
//! `repeat.rs` the errors that need not copy their context again, `panic.rs` the panic hook, `bridge.rs` the
//! `log` crate.

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::alert::Alerter;
use crate::core::Invalid;

pub mod bridge;
mod capture;
mod layer;
mod panic;
mod repeat;
mod ring;

pub use layer::{AlertLayer, Console, SharedWriter};
pub use panic::{PANIC_RECORD_WAIT, install_panic_hook};

pub use crate::core::Level;

/// Console line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-11-26T11:06:05.123Z NOTICE message key=value`.
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<LogFormat, UnknownFormat> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// A log format that is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}: use text or json")]
pub struct UnknownFormat(pub String);

/// `[log]`: console logging and which levels become alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Lowest level printed: debug, info, notice, warning, error, fatal.
    #[serde(default = "default_level")]
    pub level: Level,
    /// Lowest level mailed to the team.
    #[serde(default = "default_alert_from")]
    pub alert_from: Level,
    /// Recent log lines (all levels) attached to each alert.
    #[serde(default = "default_context_lines")]
    pub context_lines: usize,
    /// `text` or `json`.
    #[serde(default = "default_format")]
    pub format: LogFormat,
}

fn default_level() -> Level {
    Level::Info
}
fn default_alert_from() -> Level {
    Level::Error
}
fn default_context_lines() -> usize {
    20
}
fn default_format() -> LogFormat {
    LogFormat::Text
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
            alert_from: default_alert_from(),
            context_lines: default_context_lines(),
            format: default_format(),
        }
    }
}

impl LogConfig {
    /// Pure checks.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.context_lines > 10_000 {
            out.push(Invalid::new("log.context_lines", "must be at most 10000"));
        }
        if self.alert_from < Level::Warning {
            out.push(Invalid::new(
                "log.alert_from",
                "must be warning, error or fatal (lower levels would flood the inbox)",
            ));
        }
        out
    }
}

/// Logs at debug: `tend::log::debug!("x = {}", x)`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { ::tracing::debug!($($arg)+) };
}

/// Logs at info.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { ::tracing::info!($($arg)+) };
}

/// Logs at notice: normal but significant (an action was taken).
#[macro_export]
macro_rules! notice {
    ($($arg:tt)+) => { ::tracing::info!(notice = true, $($arg)+) };
}

/// Logs at warning.
#[macro_export]
macro_rules! warning {
    ($($arg:tt)+) => { ::tracing::warn!($($arg)+) };
}

/// Logs at error: with an [`AlertLayer`] installed, this mails the team.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { ::tracing::error!($($arg)+) };
}

/// Logs at fatal, flushes pending alerts (bounded wait), and exits with status 1.
#[macro_export]
macro_rules! fatal {
    ($($arg:tt)+) => {{
        ::tracing::error!(fatal = true, $($arg)+);
        $crate::log::fatal_exit()
    }};
}

pub use crate::{debug, error, fatal, info, notice, warning};

/// What the first [`AlertLayer`] shares with `fatal!` and the panic hook: its alerter and its context lines.
struct Installed {
    alerter: Alerter,
    ring: Arc<Mutex<ring::Ring>>,
}

/// Set by the first [`AlertLayer::new`].
static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// How long `fatal!` waits for pending alerts to go out.
pub const FATAL_FLUSH: Duration = Duration::from_secs(10);

/// Flushes alerts (when an [`AlertLayer`] was installed) and exits with status 1. Called by `fatal!`.
pub fn fatal_exit() -> ! {
    if let Some(installed) = INSTALLED.get() {
        let alerter = installed.alerter.clone();
        // Flush from a fresh thread: the caller may be inside an async runtime that must not block.
        let _ = std::thread::spawn(move || alerter.flush(FATAL_FLUSH)).join();
    }
    let _ = std::io::stdout().flush();
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_from_below_warning_is_refused() {
        let c = LogConfig {
            alert_from: Level::Info,
            ..LogConfig::default()
        };
        assert_eq!(c.validate().len(), 1);
    }
}
