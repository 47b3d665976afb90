//! `tend worker`: the demo's worker process (run by the `local` provider), burning the CPU its share of a
//! demand asks for, so that the demo fleet's load, and so its scaling, can be watched and steered.
//!
//! The demand, in servers' worth of work, is read each second from `{dir}/demand` (write `2.5` there to ask
//! for two and a half busy workers; missing = 0.3). Workers find each other through heartbeat files in
//! `{dir}/workers/` and split the demand evenly, each capped at 100 % of one core, like a balanced fleet.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Demand when `{dir}/demand` is missing or unreadable.
pub const DEFAULT_DEMAND: f64 = 0.3;

/// Runs the worker until the process is killed. Only returns on an I/O error with its heartbeat folder.
pub fn run(name: &str, dir: &Path) -> std::io::Result<()> {
    let workers = dir.join("workers");
    std::fs::create_dir_all(&workers)?;
    let me = workers.join(name);
    loop {
        std::fs::write(&me, b"")?;
        let demand = std::fs::read_to_string(dir.join("demand"))
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or(DEFAULT_DEMAND);
        let peers = live_peers(&workers).max(1);
        let share = (demand / peers as f64).min(1.0);
        // One second in ten slices: busy for `share` of each, asleep for the rest.
        for _ in 0..10 {
            let slice = Instant::now();
            let busy = Duration::from_millis(100).mul_f64(share);
            while slice.elapsed() < busy {
                std::hint::spin_loop();
            }
            std::thread::sleep(Duration::from_millis(100).saturating_sub(slice.elapsed()));
        }
    }
}

/// Heartbeat files touched within the last 3 seconds.
fn live_peers(workers: &Path) -> usize {
    let now = SystemTime::now();
    std::fs::read_dir(workers)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
                .filter(|m| now.duration_since(*m).unwrap_or_default() < Duration::from_secs(3))
                .count()
        })
        .unwrap_or(1)
}
