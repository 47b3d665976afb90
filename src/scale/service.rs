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

use super::cycle::CycleReport;
use super::names::name_prefix;
use super::observe::{running_ids, with_loads};
use super::policy::{Decision, Fleet, InstanceState, Observed, Policy};
use super::store::{self, DecisionRow, MEMORY_EVERY};
use super::web::FleetStatus;
use super::{ScaleConfig, signal};
use crate::alert::{Alert, Alerter};
use crate::balancer::Balancer;
use crate::cloud::{CloudConfig, CloudError, Instance, Provider};
use crate::core::Event::ScaleFailed;
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
    /// This replica stopped leading the cluster (its lease can no longer be trusted): it acts no more.
    #[error("this replica no longer leads the cluster")]
    NotLeader,
}

/// The metrics the loop keeps.
#[derive(Debug, Clone)]
pub(super) struct ScaleMetrics {
    pub(super) instances: Gauge,
    pub(super) median: Gauge,
    pub(super) added: Counter,
    pub(super) removed: Counter,
    pub(super) failed: Counter,
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
    pub(super) config: ScaleConfig,
    pub(super) prefix: String,
    pub(super) provider: Arc<dyn Provider>,
    pub(super) balancer: Option<Arc<dyn Balancer>>,
    pub(super) store: Store,
    pub(super) alerter: Alerter,
    pub(super) policy: Policy,
    pub(super) status: FleetStatus,
    pub(super) metrics: ScaleMetrics,
    pub(super) registered: HashSet<String>,
    clock: Clock,
    pub(super) last_reason: String,
    pub(super) http: reqwest::Client,
    pub(super) memory_saved: Option<tokio::time::Instant>,
    /// With `[cluster]`: act only while leading.
    pub(super) lead: Option<super::lead::Lead>,
    pub(super) warmed: bool,
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
            lead: None,
            warmed: false,
        }
    }

    /// With `[cluster]`: only the leader decides and acts; the memory moves to etcd.
    pub fn with_cluster(mut self, cluster: crate::cluster::Cluster) -> Orchestrator {
        self.lead = Some(super::lead::Lead::new(cluster, &self.prefix));
        self
    }

    /// Ok while this replica may act: alone, or leading with a fence that holds.
    pub(super) fn may_act(&self) -> Result<(), ScaleError> {
        match &self.lead {
            Some(lead) if lead.fence().is_none() => Err(ScaleError::NotLeader),
            _ => Ok(()),
        }
    }

    /// Whether this cycle should run: alone always; in a cluster only while leading. A new leader first
    /// loads the memory the previous one left in etcd.
    async fn leading(&mut self) -> bool {
        let Some(lead) = self.lead.as_mut() else {
            return true;
        };
        let Some(fence) = lead.fence() else {
            return false;
        };
        if lead.new_term(&fence) {
            // A new leader learns from the provider's history since what the memory holds, before deciding.
            self.warmed = false;
            match lead.load_memory().await {
                Ok(Some(snapshot)) => {
                    self.policy = Policy::restore(&snapshot);
                    crate::notice!(fleet = %self.prefix, member = %lead.member(),
                        "Leading the scaling: went on from the memory the cluster kept");
                }
                Ok(None) => crate::notice!(fleet = %self.prefix, member = %lead.member(),
                    "Leading the scaling: no memory kept in the cluster yet"),
                Err(error) => {
                    tracing::warn!(fleet = %self.prefix, error = %crate::core::chain(&error),
                    "Leading the scaling, but cannot read the memory the cluster kept; going on with this replica's")
                }
            }
        }
        true
    }

    /// Writes the policy's memory to the store, so a restart goes on from it. A failure is logged: the loop
    /// goes on, and only what was learned since the last write is at stake.
    pub async fn save_memory(&mut self) {
        self.memory_saved = Some(tokio::time::Instant::now());
        let snapshot = self.policy.history().snapshot();
        let saved = match &self.lead {
            // In a cluster only the leader writes it, fenced: a deposed leader's memory is refused.
            Some(lead) => match lead.fence() {
                Some(fence) => lead
                    .save_memory(&fence, &snapshot)
                    .await
                    .map_err(|e| crate::core::chain(&e)),
                None => Ok(()),
            },
            None => store::save_memory(&self.store, &self.prefix, &snapshot)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(error) = saved {
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
            if !self.leading().await {
                continue;
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

    pub(super) async fn call<T>(
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

    pub(super) fn fail(&self, what: &str, error: &ScaleError) {
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

    /// The wall clock (tokio's, so tests with paused time move it).
    pub(super) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// One cycle: observe, decide, act, store. `Err` when listing or reading the load failed (nothing decided).
    /// The first cycle learns from the provider's history first ([`Orchestrator::warm_start`]).
    pub async fn cycle(&mut self) -> Result<CycleReport, ScaleError> {
        if !self.warmed {
            self.warm_start().await;
        }
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
        // A metric coarser than the window (basic monitoring: a point every 5 minutes) needs a wider window, or
        // most readings would find no point and call the fleet's data missing.
        let resolution = self.policy.history().resolution().unwrap_or_default();
        let window = self.config.policy.window.max(resolution * 2);
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
        let decision = signal::adjust(
            &self.http,
            &self.config,
            decision,
            fleet.instances.len(),
            assessment.booting,
        )
        .await;
        // A leader deposed while this cycle observed (a pause, a lost lease) neither acts nor records a decision.
        self.may_act()?;
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

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
