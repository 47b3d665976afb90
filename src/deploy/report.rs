//! What a rollout reports: progress events and output lines for a [`RolloutSink`] (the terminal, the log,
//! JSON lines: `sink.rs`), the [`RolloutSummary`] with its per-host results and the table `tend deploy` prints,
//! and the release list `tend releases` prints.

use std::fmt::Write as _;
use std::time::Duration;

use super::health::Unhealthy;
use super::state::Verdict;
use crate::core::duration;

/// Lines of output kept per host for the summary and the alert.
pub const LAST_LINES: usize = 20;

/// Progress of the rollout, for a terminal progress line or the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<'a> {
    /// The rollout begins: the hosts of each batch, by name.
    Planned {
        /// Each batch's host names.
        batches: &'a [Vec<String>],
    },
    /// Batch `index` (0-based) of `of` begins.
    BatchStarted {
        /// 0-based batch number.
        index: usize,
        /// Number of batches.
        of: usize,
    },
    /// A host's deploy began.
    HostStarted {
        /// The host's name.
        host: &'a str,
    },
    /// A step (or rollback step) began.
    StepStarted {
        /// The host's name.
        host: &'a str,
        /// The rendered command.
        command: &'a str,
    },
    /// The host left the balancer: deregistered, and drained where the balancer says so.
    Deregistered {
        /// The host's name.
        host: &'a str,
    },
    /// The host is back in the balancer (its health check passed).
    Registered {
        /// The host's name.
        host: &'a str,
    },
    /// One health attempt answered.
    HealthChecked {
        /// The host's name.
        host: &'a str,
        /// 1-based attempt number.
        attempt: u32,
        /// `Err` says why it is unhealthy.
        result: &'a Result<(), Unhealthy>,
    },
    /// A host is done (deploy or rollback).
    HostFinished {
        /// Its report so far.
        report: &'a HostReport,
    },
}

/// Where output and progress go; implement it to print, to record progress in the store, or both.
pub trait RolloutSink: Send + Sync {
    /// One line of a step's output on `host`.
    fn output(&self, host: &str, line: &str);
    /// A progress event; ignored by default.
    fn progress(&self, event: &Progress<'_>) {
        let _ = event;
    }
}

/// How one host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostResult {
    /// Deployed and healthy.
    Succeeded,
    /// A step, the connection or the health check failed.
    Failed,
    /// Never started (the rollout stopped first).
    Skipped,
}

impl std::fmt::Display for HostResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostResult::Succeeded => "ok",
            HostResult::Failed => "FAILED",
            HostResult::Skipped => "skipped",
        })
    }
}

/// What failed on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailedStage {
    /// The SSH connection.
    Connect,
    /// Step `index` (0-based), with its rendered command.
    Step {
        /// 0-based index in `steps` (or `rollback_steps`).
        index: usize,
        /// The command.
        command: String,
    },
    /// The health check.
    Health {
        /// The URL.
        url: String,
    },
    /// Taking the host out of the balancer.
    Deregister,
    /// Putting the host back into the balancer.
    Register,
    /// Not done: this replica stopped leading the cluster before `before` (a step, the health check, ...).
    Interrupted {
        /// The host step that did not run.
        before: String,
    },
}

impl std::fmt::Display for FailedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailedStage::Connect => f.write_str("ssh connection"),
            FailedStage::Step { index, command } => write!(f, "step {} `{command}`", index + 1),
            FailedStage::Health { url } => write!(f, "health check {url}"),
            FailedStage::Deregister => f.write_str("leaving the balancer"),
            FailedStage::Register => f.write_str("rejoining the balancer"),
            FailedStage::Interrupted { before } => write!(f, "leadership check before {before}"),
        }
    }
}

/// The details of a failure: what the `DeployFailed` alert carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    /// What failed.
    pub stage: FailedStage,
    /// The step's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// One line: "exit code 3", "timed out after 30s", the ssh or HTTP error.
    pub reason: String,
    /// The last lines of the failing step's output (at most [`LAST_LINES`]).
    pub last_lines: Vec<String>,
}

/// One host's line in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReport {
    /// The host's name.
    pub host: String,
    /// How it ended.
    pub result: HostResult,
    /// Time from start to end of its deploy (zero if skipped).
    pub duration: Duration,
    /// Why it failed.
    pub failure: Option<HostFailure>,
    /// `Some(Ok)` / `Some(Err(failure))` if rollback steps ran on it.
    pub rollback: Option<Result<(), HostFailure>>,
    /// Taken out of the balancer and not put back (its health check or a step failed).
    pub left_out: bool,
}

impl HostReport {
    /// A host that has not run (yet).
    pub fn skipped(host: &str) -> HostReport {
        HostReport {
            host: host.to_owned(),
            result: HostResult::Skipped,
            duration: Duration::ZERO,
            failure: None,
            rollback: None,
            left_out: false,
        }
    }

    /// The DETAIL column: what failed, the rollback, whether the host was left out of the balancer.
    pub fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &self.failure {
            parts.push(format!("{}: {}", f.stage, f.reason));
        }
        match &self.rollback {
            Some(Ok(())) => parts.push("rolled back".into()),
            Some(Err(r)) => parts.push(format!("rollback failed at {}: {}", r.stage, r.reason)),
            None => {}
        }
        if self.left_out {
            parts.push("left out of the balancer".into());
        }
        parts.join("; ")
    }
}

/// The end of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutSummary {
    /// The overall result.
    pub verdict: Verdict,
    /// One report per host, in plan order.
    pub hosts: Vec<HostReport>,
    /// Wall time of the whole rollout.
    pub duration: Duration,
}

impl RolloutSummary {
    /// The first failed host and its failure (for the `DeployFailed` alert).
    pub fn first_failure(&self) -> Option<(&HostReport, &HostFailure)> {
        self.hosts
            .iter()
            .find_map(|h| h.failure.as_ref().map(|f| (h, f)))
    }

    /// The hosts taken out of the balancer and not put back.
    pub fn left_out(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| h.left_out)
            .map(|h| h.host.as_str())
            .collect()
    }

    /// 0 when the rollout succeeded, 1 otherwise (the CLI's exit code).
    pub fn exit_code(&self) -> i32 {
        i32::from(self.verdict != Verdict::Succeeded)
    }

    /// A plain-text table: host, result, duration, failed step and exit code.
    pub fn table(&self) -> String {
        let width = self
            .hosts
            .iter()
            .map(|h| h.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!(
            "{:<width$}  {:<8}  {:>8}  DETAIL\n",
            "HOST", "RESULT", "TIME"
        );
        for h in &self.hosts {
            let detail = h.detail();
            let time = if h.result == HostResult::Skipped {
                "-".into()
            } else {
                duration::tenths(h.duration)
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:<8}  {:>8}  {detail}",
                h.host,
                h.result.to_string(),
                time
            );
        }
        let _ = write!(
            out,
            "Deploy {:?} in {}",
            self.verdict,
            duration::tenths(self.duration)
        );
        out
    }
}

/// The summary as the last JSON line of `tend deploy --json`.
pub fn summary_json(id: i64, summary: &RolloutSummary) -> serde_json::Value {
    serde_json::json!({
        "event": "summary",
        "deploy": id,
        "verdict": summary.verdict.to_string(),
        "seconds": round_tenths(summary.duration),
        "hosts": summary.hosts.iter().map(host_json).collect::<Vec<_>>(),
        "left_out": summary.left_out(),
    })
}

/// One host's report as JSON.
pub fn host_json(h: &HostReport) -> serde_json::Value {
    serde_json::json!({
        "host": h.host,
        "result": h.result.to_string(),
        "seconds": round_tenths(h.duration),
        "detail": h.detail(),
        "left_out": h.left_out,
    })
}

fn round_tenths(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// `tend releases`: one line per release, newest first.
pub fn releases_table(releases: &[super::Release]) -> String {
    let rows: Vec<[String; 7]> = releases
        .iter()
        .map(|r| {
            let ok = r.results.iter().filter(|h| h.result == "ok").count();
            let failed = r.results.iter().filter(|h| h.result == "FAILED").count();
            let mut hosts = format!("{ok}/{} ok", r.hosts.len());
            if failed > 0 {
                let _ = write!(hosts, ", {failed} failed");
            }
            let mut state = r.state.clone();
            if let Some(by) = r.rolled_back_by {
                let _ = write!(state, " (rolled back by #{by})");
            }
            let trigger = match r.rollback_of {
                Some(to) => format!("rollback to #{to}"),
                None => r.trigger.clone(),
            };
            [
                r.id.to_string(),
                r.started_at.clone(),
                r.commit
                    .as_deref()
                    .map_or("-".into(), |c| c.chars().take(12).collect()),
                trigger,
                r.started_by.clone().unwrap_or_else(|| "-".into()),
                hosts,
                state,
            ]
        })
        .collect();
    crate::core::table::render(
        ["ID", "STARTED", "COMMIT", "TRIGGER", "BY", "HOSTS", "STATE"],
        &rows,
        "(no release yet)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::releases::{HostOutcome, Release};

    #[test]
    fn the_release_table_names_rollbacks_and_counts_hosts() {
        let host = |result: &str| HostOutcome {
            host: "h".into(),
            result: result.into(),
            seconds: 1.0,
            detail: String::new(),
            left_out: false,
        };
        let release = |id: i64, commit: &str| Release {
            id,
            started_at: "2025-06-02T09:14:03Z".into(),
            finished_at: None,
            trigger: "cli".into(),
            started_by: Some("ops@box".into()),
            commit: Some(commit.into()),
            branch: None,
            hosts: vec!["a".into(), "b".into()],
            state: "succeeded".into(),
            summary: None,
            rollback_of: None,
            rolled_back_by: None,
            results: vec![host("ok"), host("ok")],
        };
        let mut back = release(3, "0123456789abcdef");
        back.trigger = "rollback".into();
        back.rollback_of = Some(1);
        let mut bad = release(2, "fedcba");
        bad.rolled_back_by = Some(3);
        bad.state = "failed".into();
        bad.results = vec![host("ok"), host("FAILED")];
        let table = releases_table(&[back, bad]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "ID  STARTED               COMMIT        TRIGGER         BY       HOSTS             STATE"
        );
        assert!(
            lines[1].starts_with(
                "3   2025-06-02T09:14:03Z  0123456789ab  rollback to #1  ops@box  2/2 ok"
            ),
            "{table}"
        );
        assert!(
            lines[2].ends_with("1/2 ok, 1 failed  failed (rolled back by #3)"),
            "{table}"
        );
        assert_eq!(releases_table(&[]).lines().last(), Some("(no release yet)"));
    }
}
