//! Deploys as the daemon and the CLI run them: the [`Deployer`] finds the hosts (the config's list or the
//! fleet), takes the deploy lock and records the release ([`ReleaseLog`]), builds the balancer hosts leave while
//! they change, runs the rollout, records each host's result, and alerts `DeployFailed` (naming the hosts left
//! out of the balancer).
//!
//! The lock is held in the release log: a second deploy is refused and told who holds it. A lock whose holder
//! process is gone (a crash) is taken over, so a crash never blocks deploys for good.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::config::{DeployBalancer, Hosts};
use super::gate::{Gate, interrupted_alert};
use super::releases::{
    self, HostOutcome, NewRelease, NoRollback, Release, ReleaseEnd, ReleaseError, ReleaseLog,
    StoreReleases,
};
use super::report::{Progress, RolloutSink, RolloutSummary};
use super::state::Verdict;
use super::{DeployConfig, DeployContext, Plan, Target};
use crate::alert::{Alert, Alerter};
use crate::balancer::{Balancer, BalancerConfig};
use crate::cloud::{CloudConfig, CloudError, Retry};
use crate::core::time::{from_millis, millis, rfc3339};
use crate::core::{Event, Level};
use crate::store::Store;

/// Releases looked at to find the one `--rollback` goes back to.
const ROLLBACK_HISTORY: u32 = 200;

/// Why a deploy did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum DeployServiceError {
    /// `hosts = "fleet"` needs `[cloud]`.
    #[error("deploy.hosts = \"fleet\" needs a [cloud] section")]
    NoCloud,
    /// Listing the fleet failed.
    #[error("cannot list the fleet: {0}")]
    Fleet(#[source] CloudError),
    /// The plan could not be made.
    #[error(transparent)]
    Plan(#[from] super::PlanError),
    /// Another deploy holds the lock.
    #[error("another deploy is running: #{id} by {holder} since {since}")]
    Locked {
        /// Its deploy id.
        id: i64,
        /// Who started it (`user@host pid N`).
        holder: String,
        /// When.
        since: String,
    },
    /// `--rollback` found nothing to go back to.
    #[error(transparent)]
    NoRollback(#[from] NoRollback),
    /// `balancer = "scale"` without a `[scale.balancer]` (the config check prevents it).
    #[error("deploy.balancer = \"scale\" needs a [scale.balancer] table")]
    NoScaleBalancer,
    /// The balancer client could not be built.
    #[error("cannot build the deploy balancer: {0}")]
    Balancer(#[source] CloudError),
    /// The executors could not be built.
    #[error(transparent)]
    Executor(#[from] super::rollout::DeployError),
    /// The release log failed.
    #[error(transparent)]
    Releases(#[from] ReleaseError),
}

/// What started a deploy: recorded with the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `cli`, `webhook` or `rollback`.
    pub trigger: String,
    /// Who: `user@host`, or the webhook's delivery id.
    pub by: String,
    /// The release a rollback goes back to.
    pub rollback_of: Option<i64>,
}

impl Origin {
    /// `tend deploy` run by this user on this machine.
    pub fn cli() -> Origin {
        Origin {
            trigger: "cli".into(),
            by: releases::user_at_host(),
            rollback_of: None,
        }
    }

    /// The signed CI webhook, delivery `delivery`.
    pub fn webhook(delivery: &str) -> Origin {
        Origin {
            trigger: "webhook".into(),
            by: format!("delivery {delivery}"),
            rollback_of: None,
        }
    }

    /// `tend deploy --rollback` to release `target`.
    pub fn rollback(target: i64) -> Origin {
        Origin {
            trigger: "rollback".into(),
            by: releases::user_at_host(),
            rollback_of: Some(target),
        }
    }
}

/// Runs deploys: built from `[deploy]`, the `[cloud]` section it may list hosts from, and the handles it needs.
#[derive(Clone)]
pub struct Deployer {
    config: DeployConfig,
    cloud: Option<CloudConfig>,
    scale_balancer: Option<BalancerConfig>,
    store: Store,
    releases: Arc<dyn ReleaseLog>,
    alerter: Alerter,
    gate: Option<Arc<dyn Gate>>,
}

impl Deployer {
    /// A deployer for `config`; `cloud` is needed when `hosts = "fleet"`. Releases and the lock are kept in
    /// `store` (see [`Deployer::with_releases`]).
    pub fn new(
        config: DeployConfig,
        cloud: Option<CloudConfig>,
        store: Store,
        alerter: Alerter,
    ) -> Deployer {
        Deployer {
            config,
            cloud,
            scale_balancer: None,
            releases: Arc::new(StoreReleases::new(store.clone())),
            store,
            alerter,
            gate: None,
        }
    }

    /// Checks `gate` before every host step (with `[cluster]`: the leadership term the deploy began in).
    pub fn with_gate(mut self, gate: Arc<dyn Gate>) -> Deployer {
        self.gate = Some(gate);
        self
    }

    /// The `[scale.balancer]` table, which `[deploy] balancer = "scale"` reuses.
    pub fn with_scale_balancer(mut self, balancer: Option<BalancerConfig>) -> Deployer {
        self.scale_balancer = balancer;
        self
    }

    /// Keeps releases and the deploy lock in `releases` instead of the store (e.g. shared by a cluster).
    pub fn with_releases(mut self, releases: Arc<dyn ReleaseLog>) -> Deployer {
        self.releases = releases;
        self
    }

    /// The `[deploy]` section.
    pub fn config(&self) -> &DeployConfig {
        &self.config
    }

    /// The store (webhook deliveries are kept there).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where releases are kept.
    pub fn releases(&self) -> &Arc<dyn ReleaseLog> {
        &self.releases
    }

    /// The hosts to deploy to: the configured list, or the fleet's running instances by private address.
    pub async fn targets(&self) -> Result<Vec<Target>, DeployServiceError> {
        match &self.config.hosts {
            Hosts::List(list) => Ok(list.clone()),
            Hosts::Fleet => {
                let cloud = self.cloud.as_ref().ok_or(DeployServiceError::NoCloud)?;
                let provider = crate::cloud::build(cloud, &self.store)
                    .await
                    .map_err(DeployServiceError::Fleet)?;
                let instances = provider
                    .list(&cloud.prefix)
                    .await
                    .map_err(DeployServiceError::Fleet)?;
                Ok(instances
                    .into_iter()
                    .filter(|i| i.state == crate::cloud::State::Running)
                    .filter_map(|i| {
                        let addr = i.private_address.clone().or(i.public_address.clone())?;
                        Some(Target::fleet(i.name, addr).with_instance_id(i.id))
                    })
                    .collect())
            }
        }
    }

    /// Builds the plan for `context` (and `--only`).
    pub async fn plan(
        &self,
        context: DeployContext,
        only: Option<&str>,
    ) -> Result<Plan, DeployServiceError> {
        let hosts = self.targets().await?;
        Ok(super::build_plan(&self.config, &hosts, &context, only)?)
    }

    /// The plan of `--rollback`: the same steps and draining, with the commit and branch of the last successful
    /// release before the current one; and that release.
    pub async fn rollback_plan(
        &self,
        only: Option<&str>,
    ) -> Result<(Plan, Release), DeployServiceError> {
        let history = self.releases.recent(ROLLBACK_HISTORY).await?;
        let target = releases::rollback_target(&history)?.clone();
        let context = DeployContext {
            commit: target.commit.clone(),
            branch: target.branch.clone(),
        };
        Ok((self.plan(context, only).await?, target))
    }

    /// Takes the lock and records the release; the id to report.
    pub async fn begin(&self, plan: &Plan, origin: &Origin) -> Result<i64, DeployServiceError> {
        let new = NewRelease {
            started_at: millis(SystemTime::now()),
            trigger: origin.trigger.clone(),
            started_by: origin.by.clone(),
            commit: plan.context.commit.clone(),
            branch: plan.context.branch.clone(),
            hosts: plan.hosts.iter().map(|h| h.target.host()).collect(),
            rollback_of: origin.rollback_of,
            holder: releases::holder(),
        };
        self.releases
            .begin(new)
            .await?
            .map_err(|h| DeployServiceError::Locked {
                id: h.id,
                holder: h.holder,
                since: rfc3339(from_millis(h.since)),
            })
    }

    /// Plans, locks, runs and records one deploy; output goes to `sink` and is kept for the record.
    pub async fn run(
        &self,
        plan: Plan,
        origin: &Origin,
        sink: Arc<dyn RolloutSink>,
        shutdown: CancellationToken,
    ) -> Result<(i64, RolloutSummary), DeployServiceError> {
        let id = self.begin(&plan, origin).await?;
        self.execute(id, plan, sink, shutdown).await
    }

    /// The balancer hosts leave while they change, if `[deploy] balancer` is set.
    pub async fn balancer(&self) -> Result<Option<Arc<dyn Balancer>>, DeployServiceError> {
        let config = match &self.config.balancer {
            None => return Ok(None),
            Some(DeployBalancer::Own(b)) => b,
            Some(DeployBalancer::Scale) => self
                .scale_balancer
                .as_ref()
                .ok_or(DeployServiceError::NoScaleBalancer)?,
        };
        let aws = self.cloud.as_ref().and_then(|c| c.aws.as_ref());
        let retry = self
            .cloud
            .as_ref()
            .map_or_else(Retry::default, |c| c.retry.clone());
        crate::balancer::build(config, aws, retry)
            .await
            .map(Some)
            .map_err(DeployServiceError::Balancer)
    }

    /// Runs the rollout of deploy `id` (already begun), records its end and alerts on failure.
    pub async fn execute(
        &self,
        id: i64,
        plan: Plan,
        sink: Arc<dyn RolloutSink>,
        shutdown: CancellationToken,
    ) -> Result<(i64, RolloutSummary), DeployServiceError> {
        let keeper = Arc::new(Keeper {
            inner: sink,
            lines: Mutex::new(VecDeque::new()),
        });
        let ran = async {
            let balancer = self.balancer().await?;
            Ok::<_, DeployServiceError>(
                super::deploy_gated(
                    &self.config,
                    &plan,
                    balancer,
                    self.gate.clone(),
                    keeper.clone(),
                    shutdown,
                )
                .await?,
            )
        }
        .await;
        let summary = match ran {
            Ok(s) => s,
            Err(e) => {
                if let Err(error) = self.releases.abort(id).await {
                    tracing::warn!(deploy = id, %error, "Cannot record the deploy as failed");
                }
                return Err(e);
            }
        };
        let log = keeper
            .lines
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        self.finish(id, &plan, &summary, log).await?;
        Ok((id, summary))
    }

    /// Records the end of a deploy, releases the lock, and alerts on failure.
    async fn finish(
        &self,
        id: i64,
        plan: &Plan,
        summary: &RolloutSummary,
        log: String,
    ) -> Result<(), DeployServiceError> {
        let replaces = match self.releases.get(id).await? {
            Some(r) if r.rollback_of.is_some() => self.current_before(id).await?,
            _ => None,
        };
        let end = ReleaseEnd {
            at: millis(SystemTime::now()),
            ok: summary.exit_code() == 0,
            summary: summary.table(),
            log,
            results: summary
                .hosts
                .iter()
                .map(|h| HostOutcome {
                    host: h.host.clone(),
                    result: h.result.to_string(),
                    seconds: h.duration.as_secs_f64(),
                    detail: h.detail(),
                    left_out: h.left_out,
                })
                .collect(),
            replaces,
            interrupted: self.interrupted(summary),
        };
        let interrupted = end.interrupted;
        self.releases.finish(id, end).await?;
        if interrupted {
            self.alerter.raise(interrupted_alert(id, summary));
            return Ok(());
        }
        match failure_alert(id, plan, summary) {
            Some(alert) => self.alerter.raise(alert),
            None => crate::notice!(event = %Event::DeploySucceeded, deploy = id,
                hosts = summary.hosts.len(), "Deploy succeeded"),
        }
        Ok(())
    }

    /// Whether the rollout stopped because the gate closed (a host stopped by it, or the gate closed now).
    fn interrupted(&self, summary: &RolloutSummary) -> bool {
        let stopped = summary.hosts.iter().any(|h| {
            h.failure
                .as_ref()
                .is_some_and(|f| matches!(f.stage, super::report::FailedStage::Interrupted { .. }))
        });
        let closed = self.gate.as_ref().is_some_and(|g| g.may_act().is_err());
        stopped || (closed && summary.verdict != Verdict::Succeeded)
    }

    /// The release that was current when rollback `id` began: the newest one before it.
    async fn current_before(&self, id: i64) -> Result<Option<i64>, DeployServiceError> {
        let history = self.releases.recent(ROLLBACK_HISTORY).await?;
        Ok(history.iter().map(|r| r.id).find(|&r| r < id))
    }
}

/// The `DeployFailed` alert for a rollout that did not end well: the first failure, the hosts left out of the
/// balancer, the summary table.
fn failure_alert(id: i64, plan: &Plan, summary: &RolloutSummary) -> Option<Alert> {
    let left_out = summary.left_out();
    let blocked = summary.verdict == Verdict::Blocked;
    let (host, failure) = summary.first_failure()?;
    let mut body = format!(
        "Deploy #{id} failed on {} at {}: {}.\n",
        host.host, failure.stage, failure.reason
    );
    if let Some(code) = failure.exit_code {
        let _ = writeln!(body, "Exit code: {code}");
    }
    if !left_out.is_empty() {
        let _ = writeln!(
            body,
            "\nLeft out of the balancer: {} (not registered again; put back by hand once fixed, or deploy again).",
            left_out.join(", ")
        );
    }
    if blocked {
        let _ = writeln!(
            body,
            "\nThe rollout stopped: taking one more host out would leave fewer than {} of {} host(s) in service.",
            plan.min_in_service, plan.fleet_size
        );
    }
    if !failure.last_lines.is_empty() {
        let _ = writeln!(body, "\nLast lines of output:");
        for l in &failure.last_lines {
            let _ = writeln!(body, "  {l}");
        }
    }
    let _ = write!(body, "\n{}", summary.table());
    let mut subject = format!("Deploy #{id} failed on {}: {}", host.host, failure.reason);
    if !left_out.is_empty() {
        let _ = write!(
            subject,
            "; left out of the balancer: {}",
            left_out.join(", ")
        );
    }
    Some(Alert::new(
        Event::DeployFailed,
        format!("#{id}"),
        Level::Error,
        subject,
        body,
    ))
}

/// Keeps the last lines of output for the record, passing everything on.
struct Keeper {
    inner: Arc<dyn RolloutSink>,
    lines: Mutex<VecDeque<String>>,
}

impl RolloutSink for Keeper {
    fn output(&self, host: &str, line: &str) {
        if let Ok(mut l) = self.lines.lock() {
            if l.len() >= 500 {
                l.pop_front();
            }
            l.push_back(format!("{host} | {line}"));
        }
        self.inner.output(host, line);
    }

    fn progress(&self, event: &Progress<'_>) {
        self.inner.progress(event);
    }
}

/// A sink for deploys the daemon runs: output lines at debug, progress at info.
pub struct LogSink;

impl RolloutSink for LogSink {
    fn output(&self, host: &str, line: &str) {
        tracing::debug!(host, "{line}");
    }

    fn progress(&self, event: &Progress<'_>) {
        if let Progress::HostFinished { report } = event {
            crate::info!(host = %report.host, result = %report.result, "Deploy host finished");
        }
    }
}
