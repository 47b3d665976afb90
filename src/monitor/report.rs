//! What `tend monitor --once` prints: one line per target (name, state, time, reason) and a count.

use std::fmt::Write as _;

use super::check::{Outcome, Probe};

/// The table of one round of checks, and how many targets are down.
pub fn once_table(probes: &[Probe], outcomes: &[Outcome]) -> (String, usize) {
    let width = probes
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<5}  {:>8}  REASON\n",
        "NAME", "STATE", "TIME"
    );
    let mut down = 0;
    for (probe, o) in probes.iter().zip(outcomes) {
        let state = if o.up { "up" } else { "down" };
        down += usize::from(!o.up);
        let _ = writeln!(
            out,
            "{:<width$}  {:<5}  {:>6}ms  {}",
            probe.name,
            state,
            o.response_time.as_millis(),
            o.reason
        );
    }
    let _ = writeln!(out, "{} up, {} down", outcomes.len() - down, down);
    (out, down)
}
