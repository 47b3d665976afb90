//! The orchestrator, the scaler's loop: each interval, list the fleet and its load, let the pure [`Policy`] decide, act through
//! the [`Provider`] and the [`Balancer`], store the decision with its inputs, log it and alert on every action
//! and failure (`ScaledUp`, `ScaledDown`, `ScaleFailed`).
//!
//! Order matters: an instance is registered with the balancer once it runs (right after creation when the
//! provider reports it running at once), and deregistered *before* it is terminated; a failed deregistration
//! leaves the instance alone. A failure ends the cycle (alerted, stored, counted); the next cycle starts
//! afresh from what the provider lists, so nothing half-done is remembered only in memory. New instances are
//! named `{prefix}-{time}{random}`, checked against the names listed, and the name is the client token, so a
//! retried create never makes two.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::names::{name_prefix, new_name};
use super::policy::{Assessment, Decision, Fleet, InstanceState, Observed, Policy};
use super::store::{self, DecisionRow, MEMORY_EVERY};
use super::web::FleetStatus;
use super::{ScaleConfig, signal};
use crate::alert::{Alert, Alerter};
use crate::balancer::Balancer;
use crate::cloud::{CloudConfig, CloudError, Instance, Provider};
use crate::core::Event::{ScaleFailed, ScaledDown, ScaledUp};
use crate::core::stats::percent;
use crate::core::time::millis;
use crate::core::{Level, duration};
use crate::metrics::{Counter, Gauge, Metrics};
use crate::store::{Store, StoreError};

/// Why a cycle failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// A provider or balancer call failed.
    #[error("{0}")]
    Cloud(#[from] CloudError),
    /// A call did not finish within `scale.call_timeout`.
    #[error("{op} did not finish within {}", duration::exact(*.timeout))]
    Timeout {
        /// The call.
        op: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The decision could not be stored.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What the cycle did about its decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to do (a hold).
    Nothing,
    /// Done: the ids created or terminated.
    Done(Vec<String>),
    /// Dry run: what would have been done.
    DryRun(String),
    /// Failed part-way: what was done, and the error.
    Failed {
        /// Ids created or terminated before the failure.
        done: Vec<String>,
        /// The error.
        error: String,
    },
}

impl Outcome {
    /// The outcome in words ("done: i-1, i-2").
    pub fn as_text(&self) -> String {
        match self {
            Outcome::Nothing => "nothing to do".into(),
            Outcome::Done(ids) => format!("done: {}", ids.join(", ")),
            Outcome::DryRun(what) => format!("dry run: would {what}"),
            Outcome::Failed { done, error } if done.is_empty() => format!("failed: {error}"),
            Outcome::Failed { done, error } => {
                format!("failed after {}: {error}", done.join(", "))
            }
        }
    }
}

/// One cycle: what was seen, decided and done.
#[derive(Debug, Clone)]
pub struct CycleReport {
    /// When.
    pub at: SystemTime,
    /// The live instances with their load (`None` = no data).
    pub instances: Vec<(Instance, Option<f64>)>,
    /// The numbers behind the decision.
    pub assessment: Assessment,
    /// The decision.
    pub decision: Decision,
    /// What was done about it.
    pub outcome: Outcome,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// The metrics the loop keeps.
#[derive(Debug, Clone)]
struct ScaleMetrics {
    instances: Gauge,
    median: Gauge,
    added: Counter,
    removed: Counter,
    failed: Counter,
}

impl ScaleMetrics {
    fn new(m: &Metrics) -> ScaleMetrics {
        let actions = |action| {
            m.counter(
                "tend_scale_actions_total",
                "Scaling actions by kind (add counts instances).",
                &[("action", action)],
            )
        };
        ScaleMetrics {
            instances: m.gauge(
                "tend_fleet_instances",
                "Live instances with the prefix.",
                &[],
            ),
            median: m.gauge(
                "tend_fleet_load_median",
                "Median load (percent) of instances with data; NaN when none has data.",
                &[],
            ),
            added: actions("add"),
            removed: actions("remove"),
            failed: actions("failed"),
        }
    }
}

/// The wall clock as tokio sees it (so tests with paused time move it).
#[derive(Debug, Clone, Copy)]
struct Clock {
    at_start: SystemTime,
    start: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            at_start: SystemTime::now(),
            start: tokio::time::Instant::now(),
        }
    }
    fn now(&self) -> SystemTime {
        self.at_start + self.start.elapsed()
    }
}

/// The scaling loop for one fleet.
pub struct Orchestrator {
    config: ScaleConfig,
    prefix: String,
    provider: Arc<dyn Provider>,
    balancer: Option<Arc<dyn Balancer>>,
    store: Store,
    alerter: Alerter,
    policy: Policy,
    status: FleetStatus,
    metrics: ScaleMetrics,
    registered: HashSet<String>,
    clock: Clock,
    last_reason: String,
    http: reqwest::Client,
    memory_saved: Option<tokio::time::Instant>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Orchestrator {
    /// A loop over the instances named `{prefix}-…` of `provider`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: ScaleConfig,
        prefix: &str,
        provider: Arc<dyn Provider>,
        balancer: Option<Arc<dyn Balancer>>,
        store: Store,
        alerter: Alerter,
        metrics: &Metrics,
        status: FleetStatus,
    ) -> Orchestrator {
        Orchestrator {
            config,
            prefix: prefix.to_string(),
            provider,
            balancer,
            policy: restore_policy(&store, prefix),
            store,
            alerter,
            status,
            metrics: ScaleMetrics::new(metrics),
            registered: HashSet::new(),
            clock: Clock::new(),
            last_reason: String::new(),
            http: reqwest::Client::new(),
            memory_saved: None,
        }
    }

    /// Writes the policy's memory to the store, so a restart goes on from it. A failure is logged: the loop
    /// goes on, and only what was learned since the last write is at stake.
    pub async fn save_memory(&mut self) {
        self.memory_saved = Some(tokio::time::Instant::now());
        let snapshot = self.policy.history().snapshot();
        if let Err(error) = store::save_memory(&self.store, &self.prefix, &snapshot).await {
            tracing::warn!(fleet = %self.prefix, %error, "Cannot save the scaling memory");
        }
    }

    /// Publishes each cycle to `status` (the status page's view) instead of a view of its own.
    pub fn with_status(mut self, status: FleetStatus) -> Orchestrator {
        self.status = status;
        self
    }

    /// The shared view of the latest cycle.
    pub fn status(&self) -> FleetStatus {
        self.status.clone()
    }

    /// Runs a cycle every `interval` until `shutdown`. A failed cycle is alerted and the loop goes on.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ScaleError> {
        let mut tick = tokio::time::interval(self.config.policy.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                result = self.cycle() => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "Scaling cycle failed; retrying next interval");
                    }
                }
            }
        }
        self.save_memory().await;
        Ok(())
    }

    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, CloudError>>,
    ) -> Result<T, ScaleError> {
        let timeout = self.config.call_timeout;
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ScaleError::Timeout { op, timeout })?
            .map_err(ScaleError::Cloud)
    }

    fn fail(&self, what: &str, error: &ScaleError) {
        self.metrics.failed.inc();
        self.alerter.send(Alert::new(
            ScaleFailed,
            &self.prefix,
            Level::Error,
            format!("Scaling {} failed: {what}", self.prefix),
            format!("{what}: {error}\n\nThe next cycle starts again from what the provider lists."),
        ));
        tracing::warn!(alert = false, fleet = %self.prefix, %error, "Scaling failed: {what}");
    }

    /// One cycle: observe, decide, act, store. `Err` when listing or reading the load failed (nothing decided).
    pub async fn cycle(&mut self) -> Result<CycleReport, ScaleError> {
        let now = self.clock.now();
        let prefix = name_prefix(&self.prefix);
        let listed = match self.call("list", self.provider.list(&prefix)).await {
            Ok(l) => l,
            Err(e) => {
                self.fail("listing the fleet", &e);
                return Err(e);
            }
        };
        let live: Vec<Instance> = listed.into_iter().filter(|i| i.state.is_live()).collect();
        let running = running_ids(&live);
        let window = self.config.policy.window;
        let loads = match self
            .call("load", self.provider.load(&running, window))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                self.fail("reading the load", &e);
                return Err(e);
            }
        };
        let instances = with_loads(live, &running, &loads);
        self.register_running(&instances).await;
        let fleet = Fleet {
            instances: instances
                .iter()
                .map(|(i, load)| Observed {
                    id: i.id.clone(),
                    launched_at: i.launched_at,
                    state: if i.state == crate::cloud::State::Pending {
                        InstanceState::Pending
                    } else {
                        InstanceState::Running
                    },
                    load: *load,
                })
                .collect(),
        };
        let policy = &self.config.policy;
        self.policy.observe(&fleet, policy, now);
        let decision = self.policy.decide(&fleet, policy, now);
        let assessment = self.policy.assess(&fleet, policy, now);
        let decision = self
            .with_signals(decision, fleet.instances.len(), assessment.booting)
            .await;
        let outcome = self.act(&decision, &instances, now).await;
        let report = CycleReport {
            at: now,
            instances,
            assessment,
            decision,
            outcome,
            dry_run: self.config.dry_run,
        };
        self.record(&report).await;
        if self
            .memory_saved
            .is_none_or(|t| t.elapsed() >= MEMORY_EVERY)
        {
            self.save_memory().await;
        }
        Ok(report)
    }

    /// Reads the `[[scale.signal]]`s (concurrently) and combines their votes with the load's decision.
    async fn with_signals(&self, decision: Decision, n: usize, booting: usize) -> Decision {
        if self.config.signal.is_empty() {
            return decision;
        }
        let mut reads = tokio::task::JoinSet::new();
        for (i, s) in self.config.signal.iter().enumerate() {
            let (client, s) = (self.http.clone(), s.clone());
            reads.spawn(async move { (i, signal::read(&client, &s).await) });
        }
        let mut values: Vec<Result<f64, String>> =
            vec![Err("not read".into()); self.config.signal.len()];
        while let Some(done) = reads.join_next().await {
            if let Ok((i, v)) = done {
                values[i] = v;
            }
        }
        let mut votes = Vec::new();
        for (s, value) in self.config.signal.iter().zip(values) {
            if let Err(error) = &value {
                tracing::warn!(alert = false, signal = %s.name, %error, "Scaling signal has no value");
            }
            let shown = value.clone().unwrap_or(f64::NAN);
            votes.push((s.name.clone(), shown, signal::vote(value, n, s.high, s.low)));
        }
        let p = &self.config.policy;
        signal::combine(decision, &votes, n, p.max, p.max_step, booting)
    }

    /// Registers running instances not registered yet by this process (registering is idempotent, so after a
    /// restart every running one is registered once more).
    async fn register_running(&mut self, instances: &[(Instance, Option<f64>)]) {
        let Some(balancer) = self.balancer.clone() else {
            return;
        };
        if self.config.dry_run {
            return;
        }
        for (i, _) in instances {
            if i.state != crate::cloud::State::Running || self.registered.contains(&i.id) {
                continue;
            }
            match self.call("register", balancer.register(i)).await {
                Ok(()) => {
                    crate::info!(instance = %i.id, name = %i.name, "Registered with the balancer");
                    self.registered.insert(i.id.clone());
                }
                Err(e) => self.fail(&format!("registering {} with the balancer", i.id), &e),
            }
        }
    }

    async fn act(
        &mut self,
        decision: &Decision,
        instances: &[(Instance, Option<f64>)],
        now: SystemTime,
    ) -> Outcome {
        let n = instances.len();
        match decision {
            Decision::Hold { .. } => Outcome::Nothing,
            Decision::Add { count, .. } if self.config.dry_run => {
                Outcome::DryRun(format!("add {count}"))
            }
            Decision::Remove { id, .. } if self.config.dry_run => {
                Outcome::DryRun(format!("remove {id}"))
            }
            Decision::Add { count, reason } => {
                let mut taken: HashSet<String> =
                    instances.iter().map(|(i, _)| i.name.clone()).collect();
                let mut done = Vec::new();
                for _ in 0..*count {
                    let name = new_name(&self.prefix, now, &taken);
                    taken.insert(name.clone());
                    match self
                        .call("create", self.provider.create(&name, &name))
                        .await
                    {
                        Ok(created) => {
                            self.metrics.added.inc();
                            crate::notice!(instance = %created.id, %name, "Created an instance");
                            if created.state == crate::cloud::State::Running {
                                self.register_running(&[(created.clone(), None)]).await;
                            }
                            done.push(created.id);
                        }
                        Err(e) => {
                            self.fail(&format!("creating {name}"), &e);
                            self.alert_added(n, &done, reason);
                            return Outcome::Failed {
                                done,
                                error: e.to_string(),
                            };
                        }
                    }
                }
                self.alert_added(n, &done, reason);
                Outcome::Done(done)
            }
            Decision::Remove { id, reason } => {
                let Some((victim, _)) = instances.iter().find(|(i, _)| &i.id == id) else {
                    return Outcome::Failed {
                        done: vec![],
                        error: format!("{id} is not in the fleet"),
                    };
                };
                if let Some(balancer) = self.balancer.clone() {
                    if let Err(e) = self.call("deregister", balancer.deregister(victim)).await {
                        self.fail(&format!("deregistering {id} (left running)"), &e);
                        return Outcome::Failed {
                            done: vec![],
                            error: e.to_string(),
                        };
                    }
                    self.registered.remove(id);
                }
                if let Err(e) = self.call("terminate", self.provider.terminate(id)).await {
                    self.fail(&format!("terminating {id}"), &e);
                    return Outcome::Failed {
                        done: vec![],
                        error: e.to_string(),
                    };
                }
                self.metrics.removed.inc();
                crate::notice!(instance = %id, name = %victim.name, "Terminated an instance");
                self.alerter.raise(Alert::new(
                    ScaledDown,
                    &self.prefix,
                    Level::Notice,
                    format!("Scaled {} down: {n} → {}", self.prefix, n - 1),
                    format!("Terminated {id} ({}).\n\nWhy: {reason}", victim.name),
                ));
                Outcome::Done(vec![id.clone()])
            }
        }
    }

    fn alert_added(&self, n: usize, done: &[String], reason: &str) {
        if done.is_empty() {
            return;
        }
        self.alerter.raise(Alert::new(
            ScaledUp,
            &self.prefix,
            Level::Notice,
            format!("Scaled {} up: {n} → {}", self.prefix, n + done.len()),
            format!("Created {}.\n\nWhy: {reason}", done.join(", ")),
        ));
    }

    /// Stores, logs and publishes the cycle. A store failure is logged, not fatal: acting mattered more.
    async fn record(&mut self, r: &CycleReport) {
        let a = &r.assessment;
        self.metrics.instances.set(r.instances.len() as f64);
        self.metrics.median.set(a.median.unwrap_or(f64::NAN));
        let (action, count, instance) = match &r.decision {
            Decision::Hold { .. } => ("hold", 0, None),
            Decision::Add { count, .. } => ("add", *count, None),
            Decision::Remove { id, .. } => ("remove", 1, Some(id.clone())),
        };
        let reason = r.decision.reason().to_string();
        let outcome = r.outcome.as_text();
        if action != "hold" || reason != self.last_reason {
            crate::notice!(action, count, reason = %reason, outcome = %outcome, dry_run = r.dry_run,
                median = %percent(a.median), instances = r.instances.len(), "Scaling decision");
        } else {
            crate::info!(action, reason = %reason, "Scaling decision (unchanged)");
        }
        self.last_reason = reason.clone();
        let fleet = serde_json::to_string(
            &r.instances
                .iter()
                .map(|(i, load)| {
                    serde_json::json!({"id": i.id, "name": i.name, "state": i.state,
                        "launched_at": millis(i.launched_at), "load": load})
                })
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let row = DecisionRow {
            at: millis(r.at),
            action,
            count,
            instance,
            reason,
            dry_run: r.dry_run,
            instances: r.instances.len() as i64,
            median: a.median,
            predicted: a.predicted_after_removal,
            fleet,
            outcome,
        };
        if let Err(error) = store::record_decision(&self.store, row).await {
            tracing::error!(%error, "Cannot store the scaling decision");
        }
        self.status.set(r.clone());
    }
}

impl Orchestrator {
    /// The orchestrator `[scale]` and `[cloud]` describe, with its provider and balancer clients; `dry_run` forces
    /// a dry run whatever the config says.
    pub async fn build(
        scale: &ScaleConfig,
        cloud: &CloudConfig,
        store: &Store,
        alerter: &Alerter,
        metrics: &Metrics,
        dry_run: bool,
    ) -> Result<Orchestrator, CloudError> {
        let provider = crate::cloud::build(cloud, store).await?;
        let balancer = match &scale.balancer {
            Some(b) => {
                Some(crate::balancer::build(b, cloud.aws.as_ref(), cloud.retry.clone()).await?)
            }
            None => None,
        };
        let mut config = scale.clone();
        config.dry_run |= dry_run;
        Ok(Orchestrator::new(
            config,
            &cloud.prefix,
            provider,
            balancer,
            store.clone(),
            alerter.clone(),
            metrics,
            FleetStatus::default(),
        ))
    }
}

/// The policy with the memory the store kept for this fleet; a fresh one when there is none or it is unreadable
/// (said in the log: learning starts again).
fn restore_policy(store: &Store, prefix: &str) -> Policy {
    match store::load_memory(store, prefix) {
        Ok(None) => Policy::new(),
        Ok(Some(snapshot)) => Policy::restore(&snapshot),
        Err(error) => {
            tracing::warn!(fleet = %prefix, %error, "Cannot restore the scaling memory; learning again");
            Policy::new()
        }
    }
}

/// The ids of the running instances (the ones whose load is read).
pub fn running_ids(live: &[Instance]) -> Vec<String> {
    live.iter()
        .filter(|i| i.state == crate::cloud::State::Running)
        .map(|i| i.id.clone())
        .collect()
}

/// Each live instance with its load; `loads` is in the order of `running`.
pub fn with_loads(
    live: Vec<Instance>,
    running: &[String],
    loads: &[Option<f64>],
) -> Vec<(Instance, Option<f64>)> {
    live.into_iter()
        .map(|i| {
            let load = running
                .iter()
                .position(|r| *r == i.id)
                .and_then(|p| loads.get(p).copied().flatten());
            (i, load)
        })
        .collect()
}

/// The live instances named `{prefix}-…` with their load over `window` (`tend fleet`).
pub async fn observe(
    provider: &dyn Provider,
    prefix: &str,
    window: Duration,
) -> Result<Vec<(Instance, Option<f64>)>, CloudError> {
    let live: Vec<Instance> = provider
        .list(&name_prefix(prefix))
        .await?
        .into_iter()
        .filter(|i| i.state.is_live())
        .collect();
    let running = running_ids(&live);
    let loads = provider.load(&running, window).await?;
    Ok(with_loads(live, &running, &loads))
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
