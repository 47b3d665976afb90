//! Releases: every deploy is one (its commit, when, what and who started it, each host's result), kept behind the
//! small [`ReleaseLog`] interface together with the deploy lock, so the place that keeps them can change (the
//! SQLite store alone, etcd when replicas share a cluster) without the deployer knowing; and the pure choice of
//! the release `tend deploy --rollback` goes back to.

use std::future::Future;
use std::pin::Pin;

pub use super::release::{Holder, HostOutcome, NewRelease, Release, ReleaseEnd};
use crate::store::{Store, StoreError};

/// What a [`ReleaseLog`] call returns.
pub type ReleaseFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ReleaseError>> + Send + 'a>>;

/// The release log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The SQLite store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// etcd failed (with `[cluster]`): nothing was recorded.
    #[error("cannot reach the cluster's release log")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Only the leader takes the deploy lock, and this replica does not lead (or no longer does).
    #[error("this replica does not lead the cluster: deploys run on the leader")]
    NotLeader,
    /// The release counter or the lock kept changing under this replica.
    #[error("the deploy lock or the release counter kept changing; try again")]
    Contended,
}

/// Where releases and the deploy lock are kept.
pub trait ReleaseLog: Send + Sync {
    /// Takes the deploy lock and records the release, at once; `Ok(Err(holder))` when another deploy holds the
    /// lock (a holder that is gone is taken over, its release marked abandoned).
    fn begin(&self, new: NewRelease) -> ReleaseFuture<'_, Result<i64, Holder>>;
    /// Records how release `id` ended and releases the lock.
    fn finish(&self, id: i64, end: ReleaseEnd) -> ReleaseFuture<'_, ()>;
    /// Marks release `id` failed before it ran, and releases the lock.
    fn abort(&self, id: i64) -> ReleaseFuture<'_, ()>;
    /// Release `id`.
    fn get(&self, id: i64) -> ReleaseFuture<'_, Option<Release>>;
    /// The last `limit` releases, newest first.
    fn recent(&self, limit: u32) -> ReleaseFuture<'_, Vec<Release>>;
}

/// Releases and the lock in the SQLite store (`store.rs` holds the SQL).
#[derive(Debug, Clone)]
pub struct StoreReleases {
    store: Store,
}

impl StoreReleases {
    /// Releases kept in `store`.
    pub fn new(store: Store) -> StoreReleases {
        StoreReleases { store }
    }
}

impl ReleaseLog for StoreReleases {
    fn begin(&self, new: NewRelease) -> ReleaseFuture<'_, Result<i64, Holder>> {
        Box::pin(async move { Ok(super::store::begin(&self.store, new, holder_alive).await?) })
    }
    fn finish(&self, id: i64, end: ReleaseEnd) -> ReleaseFuture<'_, ()> {
        Box::pin(async move { Ok(super::store::finish(&self.store, id, end).await?) })
    }
    fn abort(&self, id: i64) -> ReleaseFuture<'_, ()> {
        Box::pin(async move { Ok(super::store::abort(&self.store, id).await?) })
    }
    fn get(&self, id: i64) -> ReleaseFuture<'_, Option<Release>> {
        Box::pin(async move { Ok(super::store::get(&self.store, id).await?) })
    }
    fn recent(&self, limit: u32) -> ReleaseFuture<'_, Vec<Release>> {
        Box::pin(async move { Ok(super::store::recent(&self.store, limit).await?) })
    }
}

/// Why there is nothing to roll back to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRollback {
    /// No deploy has run.
    #[error("no release yet: nothing to roll back")]
    NoReleases,
    /// No earlier successful release with another commit.
    #[error(
        "no successful release before #{current} with another commit than {commit} to roll back to (see tend releases)"
    )]
    NothingEarlier {
        /// The current release.
        current: i64,
        /// Its commit.
        commit: String,
    },
}

/// The release `--rollback` redeploys, from the releases newest first: the newest earlier release that
/// succeeded, has a commit other than the current one's, and was not itself rolled back (so rolling back twice
/// goes two releases back). The current release is the newest one, whatever its result.
pub fn rollback_target(releases: &[Release]) -> Result<&Release, NoRollback> {
    let (current, earlier) = releases.split_first().ok_or(NoRollback::NoReleases)?;
    earlier
        .iter()
        .find(|r| {
            r.state == "succeeded"
                && r.rolled_back_by.is_none()
                && r.commit.is_some()
                && r.commit != current.commit
        })
        .ok_or_else(|| NoRollback::NothingEarlier {
            current: current.id,
            commit: current.commit.clone().unwrap_or_else(|| "(none)".into()),
        })
}

/// This process as a lock holder: `user@host pid N`.
pub fn holder() -> String {
    format!("{} pid {}", user_at_host(), std::process::id())
}

/// `user@host`: who started a deploy from this machine.
pub fn user_at_host() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "?".into());
    format!("{user}@{}", crate::core::host::name())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: i64, commit: Option<&str>, state: &str) -> Release {
        Release {
            id,
            started_at: String::new(),
            finished_at: None,
            trigger: "cli".into(),
            started_by: None,
            commit: commit.map(str::to_owned),
            branch: None,
            hosts: vec![],
            state: state.into(),
            summary: None,
            rollback_of: None,
            rolled_back_by: None,
            results: vec![],
        }
    }

    #[test]
    fn rolls_back_to_the_last_success_before_the_current_release() {
        let a = release(1, Some("aaa"), "succeeded");
        let b = release(2, Some("bbb"), "succeeded");
        let list = [b.clone(), a.clone()];
        assert_eq!(rollback_target(&list).unwrap().id, 1);
        // The current release failed: the last success before it, even if it is the one just before.
        let c = release(3, Some("ccc"), "failed");
        assert_eq!(
            rollback_target(&[c.clone(), b.clone(), a.clone()])
                .unwrap()
                .id,
            2
        );
        // Failed, abandoned, commit-less and same-commit releases are skipped.
        let list = [
            release(6, Some("fff"), "succeeded"),
            release(5, Some("fff"), "succeeded"),
            release(4, None, "succeeded"),
            release(3, Some("ccc"), "abandoned"),
            release(2, Some("bbb"), "failed"),
            a.clone(),
        ];
        assert_eq!(rollback_target(&list).unwrap().id, 1);
    }

    #[test]
    fn rolling_back_twice_goes_two_releases_back() {
        let a = release(1, Some("aaa"), "succeeded");
        let b = release(2, Some("bbb"), "succeeded");
        let mut c = release(3, Some("ccc"), "succeeded");
        c.rolled_back_by = Some(4);
        let mut d = release(4, Some("bbb"), "succeeded");
        d.trigger = "rollback".into();
        d.rollback_of = Some(2);
        assert_eq!(rollback_target(&[d, c, b, a]).unwrap().id, 1);
    }

    #[test]
    fn nothing_to_roll_back_to_says_why() {
        assert_eq!(rollback_target(&[]), Err(NoRollback::NoReleases));
        let e = rollback_target(&[
            release(2, Some("aaa"), "succeeded"),
            release(1, Some("aaa"), "succeeded"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no successful release before #2 with another commit than aaa to roll back to (see tend releases)"
        );
    }
}
