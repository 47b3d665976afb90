//! What the first `AlertLayer` shares with `fatal!` and the panic hook (its alerter and its
//! context lines), and the exit `fatal!` takes. A leaf of `log/`: the layer sets it, the panic hook reads it.

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::ring::Ring;
use crate::alert::Alerter;

/// What the first `AlertLayer` shares with `fatal!` and the panic hook: its alerter and its context lines.
pub(super) struct Installed {
    pub(super) alerter: Alerter,
    pub(super) ring: Arc<Mutex<Ring>>,
}

/// Set by the first `AlertLayer::new`.
pub(super) static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// How long `fatal!` waits for pending alerts to go out.
pub const FATAL_FLUSH: Duration = Duration::from_secs(10);

/// Flushes alerts (when an `AlertLayer` was installed) and exits with status 1. Called by `fatal!`.
pub fn fatal_exit() -> ! {
    if let Some(installed) = INSTALLED.get() {
        let alerter = installed.alerter.clone();
        // Flush from a fresh thread: the caller may be inside an async runtime that must not block.
        let _ = std::thread::spawn(move || alerter.flush(FATAL_FLUSH)).join();
    }
    let _ = std::io::stdout().flush();
    std::process::exit(1)
}
