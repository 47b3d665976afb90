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
//! Rooms: `config.rs` the `[log]` section, `installed.rs` what the first layer shares with `fatal!` and the panic
//! hook, `layer.rs` the layer, `ring.rs` the context lines, `capture.rs` what an error hands the alert thread,
//! `repeat.rs` the errors that need not copy their context again, `panic.rs` the panic hook, `bridge.rs` the
//! `log` crate.

pub mod bridge;
mod capture;
mod config;
mod installed;
mod layer;
mod panic;
mod repeat;
mod ring;

pub use config::{LogConfig, LogFormat, UnknownFormat};
pub use installed::{FATAL_FLUSH, fatal_exit};
pub use layer::{AlertLayer, Console, SharedWriter};
pub use panic::{PANIC_RECORD_WAIT, install_panic_hook};

pub use crate::core::Level;

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
