//! This machine's name, read once: alerts, lock holders and the default cluster member name use it, and an
//! alert must not cost a file read on the caller's thread.

use std::sync::OnceLock;

/// The host name (`/proc/sys/kernel/hostname`, then `$HOSTNAME`), or "unknown".
pub fn name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into())
    })
}
