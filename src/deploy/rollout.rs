//! Runs a [`Plan`], the deploy's loop: asks [`RolloutState::next`] what to do, does it over SSH, feeds the
//! results back.
//!
//! Hosts of a batch run in parallel tasks; each step runs under `step_timeout`; output goes line by
//! line to the caller's [`RolloutSink`]; a health check follows each host's steps. The result is a
//! [`RolloutSummary`] from which the caller builds the `DeployFailed` alert and the summary table.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::DeployConfig;
use super::health::{HealthCheck, HealthClientError, HttpHealth, Unhealthy};
use super::plan::{HostPlan, Plan};
use super::report::{
    FailedStage, HostFailure, HostReport, HostResult, Progress, RolloutSink, RolloutSummary,
};
use super::ssh::{Connector, OpenSsh, RemoteSession};
use super::state::{Action, RolloutState, Verdict};

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
                    Err(e) => (e.id(), Err(e)),
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
    done: Result<Done, tokio::task::JoinError>,
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
            report.failure = Some(internal(other.err().map_or(unexpected, |e| e.to_string())));
        }
        (true, other) => {
            state.rollback_finished(i, false);
            report.rollback = Some(Err(internal(
                other.err().map_or(unexpected, |e| e.to_string()),
            )));
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
            reason: crate::core::chain(&e),
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
            Ok(Err(e)) => (None, crate::core::chain(&e)),
            Err(_) => (
                None,
                format!("timed out after {}", crate::core::duration::exact(timeout)),
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
            Err(_) => Err(Unhealthy {
                url: url.to_owned(),
                why: format!(
                    "timed out after {}",
                    crate::core::duration::exact(options.health_timeout)
                ),
            }),
        };
        sink.progress(&Progress::HealthChecked {
            host: name,
            attempt,
            result: &result,
        });
        match result {
            Ok(()) => return Ok(()),
            Err(why) => reason = why.to_string(),
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

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
