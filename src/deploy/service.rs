//! Deploys as the daemon and the CLI run them: the [`Deployer`] finds the hosts (the config's list or the
//! fleet), takes the deploy lock, runs the rollout, records it, and alerts `DeployFailed`.
//!
//! The lock is one row in the store: a second deploy is refused and told who holds it. A lock whose holder
//! process is gone (a crash) is taken over, so a crash never blocks deploys for good.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::config::Hosts;
use super::report::{Progress, RolloutSink, RolloutSummary};
use super::store::{self, NewDeploy};
use super::{DeployConfig, DeployContext, Plan, Target};
use crate::alert::{Alert, Alerter};
use crate::cloud::{CloudConfig, CloudError};
use crate::core::time::{from_millis, millis, rfc3339};
use crate::core::{Event, Level};
use crate::store::{Store, StoreError};

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
    /// The executors could not be built.
    #[error(transparent)]
    Executor(#[from] super::rollout::DeployError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs deploys: built from `[deploy]`, the `[cloud]` section it may list hosts from, and the handles it needs.
#[derive(Clone)]
pub struct Deployer {
    config: DeployConfig,
    cloud: Option<CloudConfig>,
    store: Store,
    alerter: Alerter,
}

impl Deployer {
    /// A deployer for `config`; `cloud` is needed when `hosts = "fleet"`.
    pub fn new(
        config: DeployConfig,
        cloud: Option<CloudConfig>,
        store: Store,
        alerter: Alerter,
    ) -> Deployer {
        Deployer {
            config,
            cloud,
            store,
            alerter,
        }
    }

    /// The `[deploy]` section.
    pub fn config(&self) -> &DeployConfig {
        &self.config
    }

    /// The store deploys are recorded in.
    pub fn store(&self) -> &Store {
        &self.store
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
                        Some(Target::fleet(i.name, addr))
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

    /// Records a new deploy and takes the lock; the id to report.
    pub async fn begin(&self, plan: &Plan, trigger: &str) -> Result<i64, DeployServiceError> {
        let new = NewDeploy {
            started_at: millis(SystemTime::now()),
            trigger: trigger.to_string(),
            commit: plan.context.commit.clone(),
            branch: plan.context.branch.clone(),
            hosts: plan
                .hosts
                .iter()
                .map(|h| h.target.host())
                .collect::<Vec<_>>()
                .join(" "),
            holder: holder(),
        };
        store::begin(&self.store, new, holder_alive)
            .await?
            .map_err(|(id, holder, since)| DeployServiceError::Locked {
                id,
                holder,
                since: rfc3339(from_millis(since)),
            })
    }

    /// Plans, locks, runs and records one deploy; output goes to `sink` and is kept for the record.
    pub async fn run(
        &self,
        plan: Plan,
        trigger: &str,
        sink: Arc<dyn RolloutSink>,
        shutdown: CancellationToken,
    ) -> Result<(i64, RolloutSummary), DeployServiceError> {
        let id = self.begin(&plan, trigger).await?;
        self.execute(id, plan, sink, shutdown).await
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
        let summary = match super::deploy(&self.config, &plan, keeper.clone(), shutdown).await {
            Ok(s) => s,
            Err(e) => {
                if let Err(error) = store::abort(&self.store, id).await {
                    tracing::warn!(deploy = id, %error, "Cannot record the deploy as failed");
                }
                return Err(e.into());
            }
        };
        let log = keeper
            .lines
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        self.finish(id, &summary, log).await?;
        Ok((id, summary))
    }

    /// Records the end of a deploy, releases the lock, and alerts on failure.
    async fn finish(
        &self,
        id: i64,
        summary: &RolloutSummary,
        log: String,
    ) -> Result<(), DeployServiceError> {
        let ok = summary.exit_code() == 0;
        let now = millis(SystemTime::now());
        store::finish(&self.store, id, now, ok, summary.table(), log).await?;
        match summary.first_failure() {
            Some((host, failure)) => {
                let mut body = format!(
                    "Deploy #{id} failed on {} at {}: {}.\n",
                    host.host, failure.stage, failure.reason
                );
                if let Some(code) = failure.exit_code {
                    let _ = writeln!(body, "Exit code: {code}");
                }
                if !failure.last_lines.is_empty() {
                    let _ = writeln!(body, "\nLast lines of output:");
                    for l in &failure.last_lines {
                        let _ = writeln!(body, "  {l}");
                    }
                }
                let _ = write!(body, "\n{}", summary.table());
                self.alerter.raise(Alert::new(
                    Event::DeployFailed,
                    format!("#{id}"),
                    Level::Error,
                    format!("Deploy #{id} failed on {}: {}", host.host, failure.reason),
                    body,
                ));
            }
            None => crate::notice!(event = %Event::DeploySucceeded, deploy = id,
                hosts = summary.hosts.len(), "Deploy succeeded"),
        }
        Ok(())
    }
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

/// This process as a lock holder: `user@host pid N`.
fn holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "?".into());
    format!(
        "{user}@{} pid {}",
        crate::core::host::name(),
        std::process::id()
    )
}

/// The lock's holder still runs (same host, pid alive); a holder on another host is assumed alive.
fn holder_alive(holder: &str) -> bool {
    let Some((who, pid)) = holder.rsplit_once(" pid ") else {
        return true;
    };
    if !who.ends_with(&format!("@{}", crate::core::host::name())) {
        return true;
    }
    pid.parse::<u32>()
        .map(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap_or(true)
}
