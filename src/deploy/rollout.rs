//! Runs a [`Plan`], the deploy's loop: asks [`RolloutState::next`] what to do, does it, feeds the results back.
//!
//! Every host's SSH connection is opened in parallel when the rollout starts ([`Pool`]); hosts of a batch run
//! in parallel tasks ([`HostWork`]: leave the balancer, steps over the open session, health check, rejoin);
//! output goes line by line to the caller's [`RolloutSink`]. The result is a [`RolloutSummary`] from which the
//! caller builds the `DeployFailed` alert and the summary table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::DeployConfig;
use super::gate::Gate;
use super::health::{HealthCheck, HealthClientError, HttpHealth};
use super::host::HostWork;
use super::plan::Plan;
use super::pool::Pool;
use super::report::{
    FailedStage, HostFailure, HostReport, HostResult, Progress, RolloutSink, RolloutSummary,
};
use super::ssh::{Connector, OpenSsh};
use super::state::{Action, RolloutState, Verdict};
use crate::balancer::Balancer;

pub use super::host::RolloutOptions;
pub use super::report::LAST_LINES;

/// Building the real executors failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The health-check client.
    #[error(transparent)]
    Health(#[from] HealthClientError),
}

/// What a rollout acts through: SSH, the health probe, and the balancer hosts leave while they change.
pub struct Edges<C, H> {
    /// Opens SSH sessions.
    pub connector: Arc<C>,
    /// Checks a host's health URL.
    pub health: Arc<H>,
    /// Where hosts are deregistered and registered again (`None`: no balancer).
    pub balancer: Option<Arc<dyn Balancer>>,
    /// Checked before every host step (`None`: always go on); once closed, no host starts and running hosts
    /// stop before their next step.
    pub gate: Option<Arc<dyn Gate>>,
}

/// Runs `plan` with the system OpenSSH, an HTTP health check configured from `config`, and `balancer`.
pub async fn deploy(
    config: &DeployConfig,
    plan: &Plan,
    balancer: Option<Arc<dyn Balancer>>,
    sink: Arc<dyn RolloutSink>,
    shutdown: CancellationToken,
) -> Result<RolloutSummary, DeployError> {
    deploy_gated(config, plan, balancer, None, sink, shutdown).await
}

/// [`deploy`] with a leadership gate checked before every host step.
pub async fn deploy_gated(
    config: &DeployConfig,
    plan: &Plan,
    balancer: Option<Arc<dyn Balancer>>,
    gate: Option<Arc<dyn Gate>>,
    sink: Arc<dyn RolloutSink>,
    shutdown: CancellationToken,
) -> Result<RolloutSummary, DeployError> {
    let edges = Edges {
        connector: Arc::new(OpenSsh::from_config(config)),
        health: Arc::new(HttpHealth::new(config.health_timeout)?),
        balancer,
        gate,
    };
    Ok(run_rollout(plan, &RolloutOptions::from(config), edges, sink, shutdown).await)
}

enum Done {
    Deployed(HostReport),
    RolledBack(Result<(), HostFailure>, bool),
}

/// Runs `plan` to the end with the given edges: batches in order, hosts of a batch in parallel (as far as
/// `min_in_service` allows), no new host after the rollout failed or `shutdown` fired (running hosts finish).
pub async fn run_rollout<C: Connector, H: HealthCheck>(
    plan: &Plan,
    options: &RolloutOptions,
    edges: Edges<C, H>,
    sink: Arc<dyn RolloutSink>,
    shutdown: CancellationToken,
) -> RolloutSummary {
    let started = Instant::now();
    let mut state = RolloutState::new(plan);
    let mut reports: Vec<HostReport> = plan
        .hosts
        .iter()
        .map(|h| HostReport::skipped(&h.target.name))
        .collect();
    let targets = plan.hosts.iter().map(|h| h.target.clone()).collect();
    let pool = Pool::new(edges.connector.clone(), targets);
    let mut opening: Option<JoinSet<()>> = None;
    let mut batch_started: Option<usize> = None;
    let plan = Arc::new(plan.clone());
    let mut tasks = JoinSet::new();
    let mut task_host: HashMap<tokio::task::Id, (usize, bool)> = HashMap::new();
    let verdict = loop {
        let gate_closed = edges.gate.as_ref().is_some_and(|g| g.may_act().is_err());
        if shutdown.is_cancelled() || gate_closed {
            state.cancel();
        }
        match state.next() {
            Action::Start(ids) => {
                if opening.is_none() {
                    let names: Vec<Vec<String>> = plan
                        .batches
                        .iter()
                        .map(|b| {
                            b.iter()
                                .map(|&i| plan.hosts[i].target.name.clone())
                                .collect()
                        })
                        .collect();
                    sink.progress(&Progress::Planned { batches: &names });
                    opening = Some(pool.open_all());
                }
                let batch = state.batch_of(ids[0]).unwrap_or(0);
                if batch_started != Some(batch) {
                    batch_started = Some(batch);
                    sink.progress(&Progress::BatchStarted {
                        index: batch,
                        of: plan.batches.len(),
                    });
                }
                state.started(&ids);
                for i in ids {
                    let handle =
                        tasks.spawn(host_task(&plan, options, &pool, &edges, &sink, i, None));
                    task_host.insert(handle.id(), (i, false));
                }
            }
            Action::RollBack(ids) => {
                state.rollback_started(&ids);
                for i in ids {
                    let in_service = Some(!reports[i].left_out);
                    let task = host_task(&plan, options, &pool, &edges, &sink, i, in_service);
                    let handle = tasks.spawn(task);
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
                let drained = edges.balancer.is_some();
                record(&mut state, &mut reports[i], i, is_rollback, drained, done);
                sink.progress(&Progress::HostFinished {
                    report: &reports[i],
                });
            }
            Action::Finish(verdict) => break verdict,
        }
    };
    if let Some(mut opening) = opening {
        opening.abort_all();
        while opening.join_next().await.is_some() {}
    }
    Pool::close(pool).await;
    RolloutSummary {
        verdict,
        hosts: reports,
        duration: started.elapsed(),
    }
}

/// Host `i`'s task: its deploy, or with `rollback = Some(in_service)` its rollback.
fn host_task<C: Connector, H: HealthCheck>(
    plan: &Arc<Plan>,
    options: &RolloutOptions,
    pool: &Arc<Pool<C>>,
    edges: &Edges<C, H>,
    sink: &Arc<dyn RolloutSink>,
    i: usize,
    rollback: Option<bool>,
) -> impl std::future::Future<Output = Done> + Send + 'static {
    let (plan, opts, pool) = (plan.clone(), options.clone(), pool.clone());
    let (h, b, s) = (edges.health.clone(), edges.balancer.clone(), sink.clone());
    let g = edges.gate.clone();
    async move {
        let work = HostWork {
            host: &plan.hosts[i],
            options: &opts,
            session: pool.get(i).await,
            health: h.as_ref(),
            balancer: b.as_deref(),
            sink: s.as_ref(),
            gate: g.as_deref(),
        };
        match rollback {
            None => Done::Deployed(work.deploy().await),
            Some(in_service) => {
                let (result, in_service) = work.roll_back(in_service).await;
                Done::RolledBack(result, in_service)
            }
        }
    }
}

/// Applies one finished task to the state and the host's report (a panicked task = a failed host, counted out
/// of the balancer when there is one).
fn record(
    state: &mut RolloutState,
    report: &mut HostReport,
    i: usize,
    is_rollback: bool,
    drained: bool,
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
            state.finished(i, r.result == HostResult::Succeeded, !r.left_out);
            *report = r;
        }
        (true, Ok(Done::RolledBack(r, in_service))) => {
            state.rollback_finished(i, r.is_ok(), in_service);
            report.rollback = Some(r);
            report.left_out = drained && !in_service;
        }
        (false, other) => {
            state.finished(i, false, !drained);
            report.result = HostResult::Failed;
            report.left_out = drained;
            report.failure = Some(internal(other.err().map_or(unexpected, |e| e.to_string())));
        }
        (true, other) => {
            state.rollback_finished(i, false, !drained);
            report.left_out = drained;
            report.rollback = Some(Err(internal(
                other.err().map_or(unexpected, |e| e.to_string()),
            )));
        }
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
