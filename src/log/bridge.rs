//! The `log` crate's bridge: records of `log` (what many dependencies and older code log through) reach the
//! [`super::AlertLayer`] like `tracing` events, so an error a dependency logs is mailed too.
//!
//! Call [`install`] once, next to installing the subscriber (the `tend` binary does). `tracing_subscriber`'s
//! `init()`/`try_init()` install the same bridge when its `tracing-log` feature is on (a default feature); then
//! `install` reports [`BridgeError`] and there is nothing more to do.
//!
//! Levels: `error` → error, `warn` → warning, `info` → info, `debug` and `trace` → debug (the layer keeps no
//! trace lines). `log` has no notice and no fatal; tend reads them from the target:
//! - `log::info!(target: "notice", "Deployed {version}")` is a notice;
//! - `log::error!(target: "fatal", "Cannot open the ledger")` is fatal: mailed as `FATAL`, like `fatal!`, but
//!   it does not exit the process (a `log` call cannot promise that).
//!
//! A record's call site is its own `file:line` (one alert per call site, as for `tracing` events), and its
//! target is its own; the `log.*` fields the bridge carries are not repeated among the fields.

/// The target that makes an `info` record a notice.
pub const NOTICE_TARGET: &str = "notice";
/// The target that makes an `error` record fatal.
pub const FATAL_TARGET: &str = "fatal";

/// The `log` crate already has a logger: the bridge could not be installed.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot bridge the `log` crate: a logger is already installed (tracing_subscriber's init() installs this \
     same bridge)"
)]
pub struct BridgeError(#[source] tracing_log::log::SetLoggerError);

/// Sends every `log` record to the current `tracing` subscriber (and so to the [`super::AlertLayer`]). Once
/// per process.
pub fn install() -> Result<(), BridgeError> {
    tracing_log::LogTracer::init().map_err(BridgeError)
}

/// `(notice, fatal)` marks of a `log` record with this target.
pub(super) fn marks(target: &str) -> (bool, bool) {
    (target == NOTICE_TARGET, target == FATAL_TARGET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_and_fatal_targets_mark_a_record() {
        assert_eq!(marks("notice"), (true, false));
        assert_eq!(marks("fatal"), (false, true));
        assert_eq!(marks("hyper::client"), (false, false));
    }
}
