//! Runs a [`Plan`]: asks [`RolloutState::next`] what to do, does it over SSH, feeds the results back.
//!
//! Hosts of a batch run in parallel tasks; each step runs under `step_timeout`; output goes line by
//! line to the caller's [`RolloutSink`]; a health check follows each host's steps. The result is a
//! [`RolloutSummary`] from which the caller builds the `DeployFailed` alert and the summary table.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::DeployConfig;
use super::health::{HealthCheck, HealthClientError, HttpHealth};
use super::plan::{Action, HostPlan, Plan, RolloutState, Verdict};
use super::ssh::{Connector, OpenSsh, RemoteSession};

/// Lines of output kept per host for the summary and the alert.
pub const LAST_LINES: usize = 20;

/// Timing knobs of a rollout (from `[deploy]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutOptions {
    /// Time one step may run.
    pub step_timeout: Duration,
    /// Time one health request may take.
    pub health_timeout: Duration,
    /// Extra health attempts after the first.
    pub health_retries: u32,
    /// Pause between health attempts.
    pub health_interval: Duration,
}

impl From<&DeployConfig> for RolloutOptions {
    fn from(c: &DeployConfig) -> Self {
        RolloutOptions {
            step_timeout: c.step_timeout,
            health_timeout: c.health_timeout,
            health_retries: c.health_retries,
            health_interval: c.health_interval,
        }
    }
}

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
        result: &'a Result<(), String>,
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
                secs(report.duration)
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
                secs(h.duration)
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:<8}  {:>8}  {detail}",
                h.host,
                h.result.to_string(),
                time
            );
        }
        let _ = write!(out, "Deploy {:?} in {}", self.verdict, secs(self.duration));
        out
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Building the real executors failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The health-check client.
    #[error(transparent)]
    Health(#[from] HealthClientError),
}

/// Runs `plan` with the system OpenSSH and an HTTP health check configured from `config`.
pub async fn deploy(
    config: &DeployConfig,
    plan: &Plan,
    sink: Arc<dyn RolloutSink>,
    shutdown: CancellationToken,
) -> Result<RolloutSummary, DeployError> {
    let connector = Arc::new(OpenSsh::from_config(config));
    let health = Arc::new(HttpHealth::new(config.health_timeout)?);
    Ok(run_rollout(
        plan,
        &RolloutOptions::from(config),
        connector,
        health,
        sink,
        shutdown,
    )
    .await)
}

enum Done {
    Deployed(HostReport),
    RolledBack(Result<(), HostFailure>),
}

/// Runs `plan` to the end with the given executors: batches in order, hosts of a batch in parallel,
/// no new host after the rollout failed or `shutdown` fired (running hosts finish).
pub async fn run_rollout<C: Connector, H: HealthCheck>(
    plan: &Plan,
    options: &RolloutOptions,
    connector: Arc<C>,
    health: Arc<H>,
    sink: Arc<dyn RolloutSink>,
    shutdown: CancellationToken,
) -> RolloutSummary {
    let started = Instant::now();
    let mut state = RolloutState::new(plan);
    let mut reports: Vec<HostReport> = plan
        .hosts
        .iter()
        .map(|h| HostReport {
            host: h.target.name.clone(),
            result: HostResult::Skipped,
            duration: Duration::ZERO,
            failure: None,
            rollback: None,
        })
        .collect();
    let mut tasks = JoinSet::new();
    let mut task_host: HashMap<tokio::task::Id, (usize, bool)> = HashMap::new();
    let verdict = loop {
        if shutdown.is_cancelled() {
            state.cancel();
        }
        match state.next() {
            Action::Start(ids) => {
                state.started(&ids);
                for i in ids {
                    let (host, opts) = (plan.hosts[i].clone(), options.clone());
                    let (c, h, s) = (connector.clone(), health.clone(), sink.clone());
                    let handle = tasks.spawn(async move {
                        Done::Deployed(
                            deploy_host(&host, &opts, c.as_ref(), h.as_ref(), s.as_ref()).await,
                        )
                    });
                    task_host.insert(handle.id(), (i, false));
                }
            }
            Action::RollBack(ids) => {
                state.rollback_started(&ids);
                for i in ids {
                    let (host, opts) = (plan.hosts[i].clone(), options.clone());
                    let (c, s) = (connector.clone(), sink.clone());
                    let handle = tasks.spawn(async move {
                        Done::RolledBack(roll_back(&host, &opts, c.as_ref(), s.as_ref()).await)
                    });
                    task_host.insert(handle.id(), (i, true));
                }
            }
            Action::Wait => {
                let joined = tokio::select! {
                    joined = tasks.join_next_with_id() => joined,
                    () = shutdown.cancelled(), if !shutdown.is_cancelled() => {
                        state.cancel();
                        continue;
                    }
                };
                let Some(joined) = joined else {
                    // Unreachable while the state says something runs; finish rather than spin.
                    break Verdict::Failed;
                };
                let (id, done) = match joined {
                    Ok((id, done)) => (id, Ok(done)),
                    Err(e) => (e.id(), Err(e.to_string())),
                };
                let Some((i, is_rollback)) = task_host.remove(&id) else {
                    continue;
                };
                record(&mut state, &mut reports[i], i, is_rollback, done);
                sink.progress(&Progress::HostFinished {
                    report: &reports[i],
                });
            }
            Action::Finish(verdict) => break verdict,
        }
    };
    RolloutSummary {
        verdict,
        hosts: reports,
        duration: started.elapsed(),
    }
}

/// Applies one finished task to the state and the host's report (a panicked task = a failed host).
fn record(
    state: &mut RolloutState,
    report: &mut HostReport,
    i: usize,
    is_rollback: bool,
    done: Result<Done, String>,
) {
    let internal = |why: String| HostFailure {
        stage: FailedStage::Connect,
        exit_code: None,
        reason: format!("internal error: {why}"),
        last_lines: Vec::new(),
    };
    let unexpected = format!("task for {} ended unexpectedly", report.host);
    match (is_rollback, done) {
        (false, Ok(Done::Deployed(r))) => {
            state.finished(i, r.result == HostResult::Succeeded);
            *report = r;
        }
        (true, Ok(Done::RolledBack(r))) => {
            state.rollback_finished(i, r.is_ok());
            report.rollback = Some(r);
        }
        (false, other) => {
            state.finished(i, false);
            report.result = HostResult::Failed;
            report.failure = Some(internal(other.err().unwrap_or(unexpected)));
        }
        (true, other) => {
            state.rollback_finished(i, false);
            report.rollback = Some(Err(internal(other.err().unwrap_or(unexpected))));
        }
    }
}

/// Connects to one host, runs every step, checks health.
async fn deploy_host<C: Connector, H: HealthCheck>(
    host: &HostPlan,
    options: &RolloutOptions,
    connector: &C,
    health: &H,
    sink: &dyn RolloutSink,
) -> HostReport {
    let name = host.target.name.as_str();
    let started = Instant::now();
    sink.progress(&Progress::HostStarted { host: name });
    let failure = async {
        let session = connect(host, connector).await?;
        let ran = run_steps(&session, name, &host.steps, options.step_timeout, sink).await;
        session.close().await;
        ran?;
        match &host.health_url {
            Some(url) => check_health(name, url, options, health, sink).await,
            None => Ok(()),
        }
    }
    .await
    .err();
    HostReport {
        host: name.to_owned(),
        result: if failure.is_some() {
            HostResult::Failed
        } else {
            HostResult::Succeeded
        },
        duration: started.elapsed(),
        failure,
        rollback: None,
    }
}

/// Runs the rollback steps on one host.
async fn roll_back<C: Connector>(
    host: &HostPlan,
    options: &RolloutOptions,
    connector: &C,
    sink: &dyn RolloutSink,
) -> Result<(), HostFailure> {
    let session = connect(host, connector).await?;
    let ran = run_steps(
        &session,
        &host.target.name,
        &host.rollback_steps,
        options.step_timeout,
        sink,
    )
    .await;
    session.close().await;
    ran
}

async fn connect<C: Connector>(host: &HostPlan, connector: &C) -> Result<C::Session, HostFailure> {
    connector
        .connect(&host.target)
        .await
        .map_err(|e| HostFailure {
            stage: FailedStage::Connect,
            exit_code: None,
            reason: error_chain(&e),
            last_lines: Vec::new(),
        })
}

/// Runs `steps` in order, each under `timeout`, stopping at the first failure.
async fn run_steps<S: RemoteSession>(
    session: &S,
    name: &str,
    steps: &[String],
    timeout: Duration,
    sink: &dyn RolloutSink,
) -> Result<(), HostFailure> {
    for (index, command) in steps.iter().enumerate() {
        sink.progress(&Progress::StepStarted {
            host: name,
            command,
        });
        let mut last: VecDeque<String> = VecDeque::with_capacity(LAST_LINES);
        let mut on_line = |line: &str| {
            sink.output(name, line);
            if last.len() == LAST_LINES {
                last.pop_front();
            }
            last.push_back(line.to_owned());
        };
        let outcome = tokio::time::timeout(timeout, session.run(command, &mut on_line)).await;
        let (exit_code, reason) = match outcome {
            Ok(Ok(Some(0))) => continue,
            Ok(Ok(Some(code))) => (Some(code), format!("exit code {code}")),
            Ok(Ok(None)) => (None, "killed by a signal".to_owned()),
            Ok(Err(e)) => (None, error_chain(&e)),
            Err(_) => (
                None,
                format!("timed out after {}", humantime::format_duration(timeout)),
            ),
        };
        return Err(HostFailure {
            stage: FailedStage::Step {
                index,
                command: command.clone(),
            },
            exit_code,
            reason,
            last_lines: last.into(),
        });
    }
    Ok(())
}

/// GETs `url` until it answers 2xx, at most `1 + health_retries` times.
async fn check_health<H: HealthCheck>(
    name: &str,
    url: &str,
    options: &RolloutOptions,
    health: &H,
    sink: &dyn RolloutSink,
) -> Result<(), HostFailure> {
    let attempts = options.health_retries.saturating_add(1);
    let mut reason = String::new();
    for attempt in 1..=attempts {
        let result = match tokio::time::timeout(options.health_timeout, health.check(url)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "GET {url}: timed out after {}",
                humantime::format_duration(options.health_timeout)
            )),
        };
        sink.progress(&Progress::HealthChecked {
            host: name,
            attempt,
            result: &result,
        });
        match result {
            Ok(()) => return Ok(()),
            Err(why) => reason = why,
        }
        if attempt < attempts {
            tokio::time::sleep(options.health_interval).await;
        }
    }
    Err(HostFailure {
        stage: FailedStage::Health {
            url: url.to_owned(),
        },
        exit_code: None,
        reason: format!("{reason} (after {attempts} attempt(s))"),
        last_lines: Vec::new(),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
