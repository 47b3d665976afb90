//! Helpers that start real servers for the integration tests (the `cloud` branch's subset; the lead's
//! support/mod.rs has the same helpers plus more).
#![allow(dead_code)]

pub mod fault_proxy;
pub mod moto;

use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, read, released; the caller binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Polls `f` until it returns Some, or panics with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The Python venv with aiosmtpd and moto (made by scripts/test).
pub fn venv() -> std::path::PathBuf {
    std::env::var_os("TEND_TEST_VENV")
        .map(Into::into)
        .unwrap_or_else(|| "/var/cache/tend-test/venv".into())
}
