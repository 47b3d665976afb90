//! The `local` provider's processes as tests see them: their pids in the store, whether they live, and a guard
//! that kills them when a test ends (a configured local fleet outlives tend on purpose).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pids the local provider recorded in the store at `db`.
pub fn pids(db: &Path) -> Vec<i64> {
    let Ok(c) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    let Ok(mut st) = c.prepare("SELECT pid FROM local_instances") else {
        return Vec::new();
    };
    st.query_map([], |r| r.get(0))
        .map(|rows| rows.flatten().collect())
        .unwrap_or_default()
}

/// Alive and not a zombie.
pub fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z") | Some("X"))
    })
}

/// Kills the process groups of every local instance recorded in the store at `db` when dropped.
pub struct Reap(pub PathBuf);

impl Drop for Reap {
    fn drop(&mut self) {
        for pid in pids(&self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}
