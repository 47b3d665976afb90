//! Deploys on the leader (with `[cluster]`): the loop that watches the deploy requests any replica's webhook left
//! in etcd and, while this replica leads, runs each once.
//!
//! Each request is marked taken with a fenced write (etcd refuses it once a newer term exists), the release and
//! the lock are taken in the same term ([`EtcdReleases::in_term`]), and the rollout checks that term's fence
//! before every host step ([`Gate`](super::gate::Gate)), so a leader paused past its lease runs no further host
//! step when it resumes and records the deploy as interrupted. A new leader does not resume a deploy an earlier
//! term began: it says so in the log and drops the request (a request an earlier term took but never began a
//! deploy for is run), and the lock of a dead lease is already gone, so the next deploy is never blocked. A deploy
//! that cannot start for a passing reason (locked, etcd, the fleet) waits and is tried again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::DeployContext;
use super::etcd_releases::EtcdReleases;
use super::releases::ReleaseLog;
use super::requests::{DeployRequest, REQUESTS, Taken, Todo, plan_requests};
use super::service::{DeployServiceError, Deployer, LogSink, Origin};
use crate::cluster::{Cluster, ClusterError, Fence, Guard, Life, Write};
use crate::core::Event;

/// How often leadership is looked at again without news, and the pause before retrying a locked deploy.
const RECHECK: Duration = Duration::from_secs(1);
/// The pause before a deploy request that failed to start for a passing reason is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// Releases looked at to find whether an orphaned request began a deploy.
const ORPHAN_WINDOW: u32 = 100;
/// Tries to settle a deploy's record and lock, RECHECK apart.
const SETTLE_ATTEMPTS: u32 = 30;

/// The leader's deploy loop.
pub struct DeployLeader {
    cluster: Cluster,
    deployer: Deployer,
    releases: EtcdReleases,
}

impl DeployLeader {
    /// Runs the requests in `cluster` with `deployer` (whose releases are kept in the cluster).
    pub fn new(cluster: Cluster, deployer: Deployer) -> DeployLeader {
        DeployLeader {
            releases: EtcdReleases::new(cluster.clone()),
            cluster,
            deployer,
        }
    }

    /// Watches the requests until `shutdown`; acts only while this replica leads.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ClusterError> {
        let mut requests = self.cluster.watch_state(REQUESTS, shutdown.child_token())?;
        let mut leadership = self.cluster.leadership();
        loop {
            let fence = leadership
                .borrow_and_update()
                .clone()
                .filter(|f| f.check().is_ok());
            if let Some(fence) = fence {
                let todo = plan_requests(&requests.borrow_and_update().clone(), fence.rev());
                for t in todo {
                    if fence.check().is_err() || shutdown.is_cancelled() {
                        break;
                    }
                    self.handle(&fence, t, &shutdown).await;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = requests.changed() => if r.is_err() { return Ok(()) },
                _ = leadership.changed() => {}
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    }

    async fn handle(&self, fence: &Fence, todo: Todo, shutdown: &CancellationToken) {
        match todo {
            Todo::Orphaned(key, request) => {
                if let Err(error) = self.orphaned(fence, key, request).await {
                    tracing::warn!(error = %crate::core::chain(&error), "Cannot settle an old deploy request");
                }
            }
            Todo::Run(key, request) => {
                if let Err(error) = self.run_one(fence, &key, request, shutdown).await {
                    tracing::error!(error = %crate::core::chain(&error), "Deploy request could not run");
                }
            }
        }
    }

    /// A request an earlier leader took: if it began a deploy (a release names the delivery), that deploy is not
    /// resumed and the request goes; if it never began one, the request is put back to run.
    async fn orphaned(
        &self,
        fence: &Fence,
        key: String,
        request: DeployRequest,
    ) -> Result<(), ClusterError> {
        let by = Origin::webhook(&request.delivery).by;
        let began = match self.releases.recent(ORPHAN_WINDOW).await {
            Ok(list) => list
                .into_iter()
                .find(|r| r.started_by.as_deref() == Some(by.as_str())),
            Err(error) => {
                tracing::warn!(%error, "Cannot read the releases; the old request waits");
                return Ok(());
            }
        };
        let from = request
            .taken
            .as_ref()
            .map(|t| t.by.clone())
            .unwrap_or_default();
        match began {
            Some(release) => {
                crate::notice!(delivery = %request.delivery, deploy = release.id, by = %from,
                    state = %release.state,
                    "Not resuming a deploy an earlier leader began: it stopped part-way; deploy again to finish it");
                self.cluster
                    .commit(Some(fence), &[], &[Write::Delete(key)])
                    .await?;
            }
            None => {
                crate::info!(delivery = %request.delivery, by = %from,
                    "A deploy request an earlier leader took never began; running it");
                let untaken = DeployRequest {
                    taken: None,
                    ..request
                };
                let back = [Write::put(&key, &untaken, Life::Kept)?];
                self.cluster.commit(Some(fence), &[], &back).await?;
            }
        }
        Ok(())
    }

    /// Takes the request (fenced), runs its deploy to the end, deletes the request.
    async fn run_one(
        &self,
        fence: &Fence,
        key: &str,
        request: DeployRequest,
        shutdown: &CancellationToken,
    ) -> Result<(), ClusterError> {
        let Some(found) = self.cluster.get_versioned::<DeployRequest>(key).await? else {
            return Ok(());
        };
        if found.value.taken.is_some() {
            return Ok(());
        }
        let mut taken = found.value.clone();
        taken.taken = Some(Taken {
            by: self.cluster.name().to_owned(),
            term: fence.rev(),
            deploy: None,
        });
        let guards = [Guard::Unchanged(key.to_owned(), found.mod_revision)];
        let mark = [Write::put(key, &taken, Life::Kept)?];
        if !self.cluster.commit(Some(fence), &guards, &mark).await? {
            return Ok(());
        }
        let deployer = self
            .deployer
            .clone()
            .with_releases(Arc::new(self.releases.in_term(fence.clone())))
            .with_gate(Arc::new(fence.clone()));
        let context = DeployContext {
            commit: Some(request.commit.clone()),
            branch: Some(request.branch.clone()),
        };
        let begun = match deployer.plan(context, None).await {
            Ok(plan) => deployer
                .begin(&plan, &Origin::webhook(&request.delivery))
                .await
                .map(|id| (id, plan)),
            Err(e) => Err(e),
        };
        let (id, plan) = match begun {
            Ok(begun) => begun,
            Err(error) if permanent(&error) => {
                tracing::error!(delivery = %request.delivery, error = %crate::core::chain(&error),
                    "Deploy request cannot start; dropped");
                return self.cluster.delete(key).await;
            }
            Err(error) => {
                // Locked, or etcd, the fleet or the leadership failing now: the request waits and is tried again
                // (by the next leader if this one is deposed: it began nothing).
                let pause = match &error {
                    DeployServiceError::Locked { .. } => RECHECK,
                    _ => RETRY,
                };
                crate::info!(delivery = %request.delivery, error = %crate::core::chain(&error),
                    "Deploy request waits; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => {}
                }
                let back = [Write::put(key, &request, Life::Kept)?];
                self.cluster.commit(Some(fence), &[], &back).await?;
                return Ok(());
            }
        };
        crate::notice!(event = %Event::DeployStarted, deploy = id, commit = %request.commit,
            branch = %request.branch, delivery = %request.delivery, received_by = %request.received_by,
            "Deploy triggered by webhook, running on the leader");
        if let Some(t) = taken.taken.as_mut() {
            t.deploy = Some(id);
        }
        if let Err(error) = self.cluster.put_fenced(fence, key, &taken).await {
            tracing::debug!(error = %crate::core::chain(&error), "Cannot note the deploy id on its request");
        }
        let started = SystemTime::now();
        if let Err(error) = deployer
            .execute(id, plan, Arc::new(LogSink), shutdown.clone())
            .await
        {
            tracing::error!(deploy = id, error = %crate::core::chain(&error), "Deploy could not run");
        }
        tracing::debug!(deploy = id, took = ?started.elapsed().unwrap_or_default(), "Deploy request done");
        self.settle(id, shutdown).await;
        self.cluster.delete(key).await
    }

    /// Retries [`EtcdReleases::settle`] for a while (etcd may be failing right now): the lock must not outlive
    /// the deploy. Past that, the lock goes with this replica's lease at the latest.
    async fn settle(&self, id: i64, shutdown: &CancellationToken) {
        for attempt in 1..=SETTLE_ATTEMPTS {
            match self.releases.settle(id).await {
                Ok(()) => return,
                Err(error) if attempt == SETTLE_ATTEMPTS => {
                    tracing::error!(deploy = id, error = %crate::core::chain(&error),
                        "Cannot release the deploy lock; it goes with this replica's lease")
                }
                Err(error) => {
                    tracing::debug!(deploy = id, error = %crate::core::chain(&error), "Settling a deploy failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RECHECK) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Whether a deploy that could not start never will without a change (the config, the plan): drop its request.
fn permanent(error: &DeployServiceError) -> bool {
    matches!(
        error,
        DeployServiceError::NoCloud
            | DeployServiceError::Plan(_)
            | DeployServiceError::NoScaleBalancer
            | DeployServiceError::NoRollback(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_plan_drops_the_request_and_passing_failures_keep_it() {
        assert!(permanent(&DeployServiceError::NoCloud));
        assert!(permanent(&DeployServiceError::NoScaleBalancer));
        let locked = DeployServiceError::Locked {
            id: 1,
            holder: "tend-a".into(),
            since: String::new(),
        };
        assert!(!permanent(&locked));
        let etcd = DeployServiceError::Releases(super::super::releases::ReleaseError::NotLeader);
        assert!(!permanent(&etcd));
    }
}
