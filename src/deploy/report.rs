//! What a rollout reports: progress events and output lines for a [`RolloutSink`] (the terminal, the log),
//! and the [`RolloutSummary`] with its per-host results and the table `tend deploy` prints.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::health::Unhealthy;
use super::state::Verdict;
use crate::core::duration;

/// Lines of output kept per host for the summary and the alert.
pub const LAST_LINES: usize = 20;

/// Progress of the rollout, for a terminal progress line or the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<'a> {
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

/// Writes `host | line` for output and a `host: ...` line per progress event.
pub struct WriterSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl WriterSink {
    /// A sink writing to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Self {
        WriterSink {
            out: Mutex::new(Box::new(out)),
        }
    }

    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    fn write_line(&self, text: &str) {
        // A poisoned lock only means another thread panicked mid-line; keep printing.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl RolloutSink for WriterSink {
    fn output(&self, host: &str, line: &str) {
        self.write_line(&format!("{host} | {line}"));
    }

    fn progress(&self, event: &Progress<'_>) {
        match event {
            Progress::HostStarted { host } => self.write_line(&format!("{host}: deploying")),
            Progress::StepStarted { host, command } => {
                self.write_line(&format!("{host}: $ {command}"))
            }
            Progress::HealthChecked {
                host,
                attempt,
                result: Err(why),
            } => self.write_line(&format!("{host}: health attempt {attempt} failed: {why}")),
            Progress::HealthChecked { .. } => {}
            Progress::HostFinished { report } => self.write_line(&format!(
                "{}: {} in {}",
                report.host,
                report.result,
                duration::tenths(report.duration)
            )),
        }
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
}

impl std::fmt::Display for FailedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailedStage::Connect => f.write_str("ssh connection"),
            FailedStage::Step { index, command } => write!(f, "step {} `{command}`", index + 1),
            FailedStage::Health { url } => write!(f, "health check {url}"),
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
            let detail = match (&h.failure, &h.rollback) {
                (Some(f), rb) => {
                    let mut d = format!("{}: {}", f.stage, f.reason);
                    match rb {
                        Some(Ok(())) => d.push_str("; rolled back"),
                        Some(Err(r)) => {
                            d.push_str(&format!("; rollback failed at {}: {}", r.stage, r.reason))
                        }
                        None => {}
                    }
                    d
                }
                (None, Some(Ok(()))) => "rolled back".into(),
                (None, Some(Err(r))) => format!("rollback failed at {}: {}", r.stage, r.reason),
                (None, None) => String::new(),
            };
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
