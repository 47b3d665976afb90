//! What `tend monitor --once` prints (one line per target: name, state, time, reason; and a count), and what
//! `tend silence --list` prints.

use std::fmt::Write as _;

use std::time::SystemTime;

use super::check::{Outcome, Probe};
use super::maintenance::{Silence, Windows};
use crate::core::time::rfc3339;

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

/// The silences in force and the maintenance windows (open now, or when they open next).
pub fn quiet_table(silences: &[Silence], windows: &Windows, now: SystemTime) -> String {
    let mut out = String::new();
    if silences.is_empty() {
        out.push_str("No silence in force.\n");
    } else {
        let _ = writeln!(
            out,
            "{:<20}  {:<20}  {:<20}  REASON",
            "SILENCED", "UNTIL", "BY"
        );
        for s in silences.iter().filter(|s| s.since <= now) {
            let _ = writeln!(
                out,
                "{:<20}  {:<20}  {:<20}  {}",
                s.target,
                rfc3339(s.until),
                s.by,
                s.reason
            );
        }
    }
    if windows.is_empty() {
        out.push_str("No maintenance window configured.\n");
    } else {
        let _ = writeln!(
            out,
            "\n{:<20}  {:<24}  {:<28}  SCHEDULE",
            "WINDOW", "TARGETS", "STATUS"
        );
        for w in &windows.0 {
            let status = w.status(now);
            let _ = writeln!(
                out,
                "{:<20}  {:<24}  {:<28}  {}",
                w.name,
                w.targets.join(","),
                status,
                w.schedule()
            );
        }
    }
    out
}
