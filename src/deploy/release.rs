//! A release as the deploy log keeps it: the [`NewRelease`] a deploy begins, the [`ReleaseEnd`] it finishes with,
//! each host's [`HostOutcome`], the [`Release`] read back and the [`Holder`] of the deploy lock. A leaf of
//! `deploy/`: `releases.rs` (the `ReleaseLog` contract), `store.rs` and `etcd_releases.rs` all use it.

use serde::{Deserialize, Serialize};

/// Who holds the deploy lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The deploy holding it.
    pub id: i64,
    /// `user@host pid N`.
    pub holder: String,
    /// Since when (ms since the epoch).
    pub since: i64,
}

/// A deploy about to start.
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// When (ms since the epoch).
    pub started_at: i64,
    /// `cli`, `webhook` or `rollback`.
    pub trigger: String,
    /// Who: `user@host` for the CLI, the delivery id for the webhook.
    pub started_by: String,
    /// The commit, when known.
    pub commit: Option<String>,
    /// The branch, when known.
    pub branch: Option<String>,
    /// Every host, in rollout order.
    pub hosts: Vec<String>,
    /// The release this one goes back to (`--rollback`).
    pub rollback_of: Option<i64>,
    /// Who takes the lock (`user@host pid N`).
    pub holder: String,
}

/// How a deploy ended.
#[derive(Debug, Clone)]
pub struct ReleaseEnd {
    /// When (ms since the epoch).
    pub at: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The summary table.
    pub summary: String,
    /// The last lines of output.
    pub log: String,
    /// Each host's result.
    pub results: Vec<HostOutcome>,
    /// The release this one replaced by rolling back, marked rolled back when `ok`.
    pub replaces: Option<i64>,
    /// It stopped part-way: this replica stopped leading the cluster (never without `[cluster]`).
    pub interrupted: bool,
}

impl ReleaseEnd {
    /// The release's state after this end: `interrupted`, `succeeded` or `failed`.
    pub fn state(&self) -> &'static str {
        match (self.interrupted, self.ok) {
            (true, _) => "interrupted",
            (false, true) => "succeeded",
            (false, false) => "failed",
        }
    }
}

/// One host's result in a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostOutcome {
    /// The host.
    pub host: String,
    /// `ok`, `FAILED` or `skipped`.
    pub result: String,
    /// Seconds its deploy took.
    pub seconds: f64,
    /// What failed, the rollback, whether it was left out of the balancer.
    pub detail: String,
    /// Taken out of the balancer and not put back.
    pub left_out: bool,
}

/// One release as `tend releases`, the API and the status page show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Release {
    /// The deploy id.
    pub id: i64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
    /// What started it: `cli`, `webhook`, `rollback`.
    pub trigger: String,
    /// Who started it.
    pub started_by: Option<String>,
    /// The commit.
    pub commit: Option<String>,
    /// The branch.
    pub branch: Option<String>,
    /// The hosts.
    pub hosts: Vec<String>,
    /// `running`, `succeeded`, `failed`, `abandoned`, `interrupted` (its leader lost leadership part-way).
    pub state: String,
    /// The summary table.
    pub summary: Option<String>,
    /// The release this one rolled back to.
    pub rollback_of: Option<i64>,
    /// The rollback that replaced this release.
    pub rolled_back_by: Option<i64>,
    /// Each host's result (empty while running).
    pub results: Vec<HostOutcome>,
}
