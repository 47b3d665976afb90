//! Releases and the deploy lock in the cluster's etcd (with `[cluster]`), behind the same [`ReleaseLog`] as the
//! SQLite store, so every replica reads the same history and only the leader can deploy.
//!
//! ```text
//! state/deploy/counter             the last release id (a number)
//! state/deploy/releases/{id:020}   one release as JSON
//! state/deploy/lock                {id, holder, since}, bound to the leader's member lease
//! ```
//! `begin` is one transaction, fenced on the leader key's revision: the lock is absent, the counter is where it
//! was read → counter + 1, the release, the lock. So ids are never given twice, a deposed leader cannot take the
//! lock, and the lock vanishes with the lease of a leader that died or was paused past it (a lock whose lease
//! died is free). Releases still "running" without a lock are marked `interrupted` by the next `begin`.
//! `finish` is not fenced: a deposed leader still records how its own deploy ended (interrupted, not lost).

use serde::{Deserialize, Serialize};

use super::releases::{
    Holder, HostOutcome, NewRelease, Release, ReleaseEnd, ReleaseError, ReleaseFuture, ReleaseLog,
};
use crate::cluster::{Cluster, ClusterError, Fence, Guard, Life, Write};
use crate::core::time::{from_millis, rfc3339};

const COUNTER: &str = "deploy/counter";
const LOCK: &str = "deploy/lock";
const RELEASES: &str = "deploy/releases/";
/// Transactions tried before giving up with [`ReleaseError::Contended`].
const ROUNDS: usize = 5;
/// Tries at recording how a deploy ended, FINISH_PAUSE apart.
const FINISH_ATTEMPTS: u32 = 5;
const FINISH_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
/// Releases looked at for a stale "running" one when the lock is taken.
const STALE_WINDOW: i64 = 10;

/// The key of release `id`: zero-padded, so keys sort as numbers.
pub fn release_key(id: i64) -> String {
    format!("{RELEASES}{id:020}")
}

/// One release as kept in etcd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The id.
    pub id: i64,
    /// Started, ms since the epoch.
    pub started_at: i64,
    /// Ended, ms since the epoch.
    pub finished_at: Option<i64>,
    /// `cli`, `webhook`, `rollback`.
    pub trigger: String,
    /// Who started it.
    pub started_by: String,
    /// The replica that ran it.
    pub member: String,
    /// The commit.
    pub commit: Option<String>,
    /// The branch.
    pub branch: Option<String>,
    /// The hosts.
    pub hosts: Vec<String>,
    /// `running`, `succeeded`, `failed`, `interrupted`.
    pub state: String,
    /// The summary table.
    pub summary: Option<String>,
    /// The last lines of output.
    pub log: Option<String>,
    /// The release this one rolled back to.
    pub rollback_of: Option<i64>,
    /// The rollback that replaced it.
    pub rolled_back_by: Option<i64>,
    /// Each host's result.
    pub results: Vec<HostOutcome>,
}

impl Record {
    /// A release about to start.
    pub fn new(id: i64, new: &NewRelease, member: &str) -> Record {
        Record {
            id,
            started_at: new.started_at,
            finished_at: None,
            trigger: new.trigger.clone(),
            started_by: new.started_by.clone(),
            member: member.to_owned(),
            commit: new.commit.clone(),
            branch: new.branch.clone(),
            hosts: new.hosts.clone(),
            state: "running".into(),
            summary: None,
            log: None,
            rollback_of: new.rollback_of,
            rolled_back_by: None,
            results: Vec::new(),
        }
    }

    /// The record after `end`.
    pub fn ended(mut self, end: &ReleaseEnd) -> Record {
        self.finished_at = Some(end.at);
        self.state = end.state().into();
        self.summary = Some(end.summary.clone());
        self.log = Some(end.log.clone());
        self.results = end.results.clone();
        self
    }

    /// As `tend releases` and the API show it.
    pub fn release(self) -> Release {
        Release {
            id: self.id,
            started_at: rfc3339(from_millis(self.started_at)),
            finished_at: self.finished_at.map(|t| rfc3339(from_millis(t))),
            trigger: self.trigger,
            started_by: Some(self.started_by),
            commit: self.commit,
            branch: self.branch,
            hosts: self.hosts,
            state: self.state,
            summary: self.summary,
            rollback_of: self.rollback_of,
            rolled_back_by: self.rolled_back_by,
            results: self.results,
        }
    }
}

/// The lock's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The release holding it.
    pub id: i64,
    /// `member (user@host pid N)`.
    pub holder: String,
    /// Since when, ms since the epoch.
    pub since: i64,
}

/// Releases and the lock in etcd; `begin` needs the leadership term it runs in ([`EtcdReleases::in_term`]).
#[derive(Debug, Clone)]
pub struct EtcdReleases {
    cluster: Cluster,
    fence: Option<Fence>,
}

impl EtcdReleases {
    /// Reads (and finishes) releases in `cluster`; `begin` is refused until [`EtcdReleases::in_term`].
    pub fn new(cluster: Cluster) -> EtcdReleases {
        EtcdReleases {
            cluster,
            fence: None,
        }
    }

    /// The same log, taking the lock in leadership term `fence`.
    pub fn in_term(&self, fence: Fence) -> EtcdReleases {
        EtcdReleases {
            cluster: self.cluster.clone(),
            fence: Some(fence),
        }
    }

    async fn take(&self, new: NewRelease) -> Result<Result<i64, Holder>, ReleaseError> {
        let fence = self.fence.as_ref().ok_or(ReleaseError::NotLeader)?;
        let c = &self.cluster;
        for _ in 0..ROUNDS {
            if let Some(held) = c.get_versioned::<Lock>(LOCK).await? {
                let l = held.value;
                return Ok(Err(Holder {
                    id: l.id,
                    holder: l.holder,
                    since: l.since,
                }));
            }
            let counter = c.get_versioned::<i64>(COUNTER).await?;
            let (id, counted) = match &counter {
                Some(v) => (
                    v.value + 1,
                    Guard::Unchanged(COUNTER.into(), v.mod_revision),
                ),
                None => (1, Guard::Absent(COUNTER.into())),
            };
            let lock = Lock {
                id,
                holder: format!("{} ({})", c.name(), new.holder),
                since: new.started_at,
            };
            let writes = [
                Write::put(COUNTER, &id, Life::Kept)?,
                Write::put(
                    &release_key(id),
                    &Record::new(id, &new, c.name()),
                    Life::Kept,
                )?,
                Write::put(LOCK, &lock, Life::Member)?,
            ];
            let guards = [Guard::Absent(LOCK.into()), counted];
            match c.commit(Some(fence), &guards, &writes).await {
                Ok(true) => {
                    self.interrupt_stale(id).await;
                    return Ok(Ok(id));
                }
                Ok(false) => continue,
                Err(ClusterError::Fenced) => return Err(ReleaseError::NotLeader),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ReleaseError::Contended)
    }

    /// Marks releases older than `id` still "running" as interrupted: the lock was free, so their leader is
    /// gone. Best effort (a failure is logged; the next `begin` tries again).
    async fn interrupt_stale(&self, id: i64) {
        let recent: Vec<(String, Record)> = match self
            .cluster
            .list_json_last(RELEASES, STALE_WINDOW)
            .await
        {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(error = %crate::core::chain(&error), "Cannot look for interrupted deploys");
                return;
            }
        };
        for (_, r) in recent {
            if r.id < id && r.state == "running" {
                let stale = r.id;
                let result = self
                    .update(stale, |mut r| {
                        r.state = "interrupted".into();
                        r
                    })
                    .await;
                match result {
                    Ok(()) => crate::notice!(deploy = stale, member = %r.member,
                        "Deploy marked interrupted: its leader lost the deploy lock before it ended; not resumed"),
                    Err(error) => {
                        tracing::warn!(deploy = stale, %error, "Cannot mark a deploy interrupted")
                    }
                }
            }
        }
    }

    /// Rewrites release `id` with `change`, if it is still what was read.
    async fn update(&self, id: i64, change: impl Fn(Record) -> Record) -> Result<(), ReleaseError> {
        let key = release_key(id);
        for _ in 0..ROUNDS {
            let Some(found) = self.cluster.get_versioned::<Record>(&key).await? else {
                return Ok(());
            };
            let changed = change(found.value.clone());
            if changed == found.value {
                return Ok(());
            }
            let writes = [Write::put(&key, &changed, Life::Kept)?];
            let guards = [Guard::Unchanged(key.clone(), found.mod_revision)];
            if self.cluster.commit(None, &guards, &writes).await? {
                return Ok(());
            }
        }
        Err(ReleaseError::Contended)
    }

    /// Makes sure release `id` no longer holds anything: still "running" (its end could not be recorded) →
    /// failed; the lock released if it holds it. The leader calls it after every deploy, so an etcd failure at
    /// the end cannot keep the lock for as long as the leader lives.
    pub async fn settle(&self, id: i64) -> Result<(), ReleaseError> {
        self.update(id, |mut r| {
            if r.state == "running" {
                r.state = "failed".into();
            }
            r
        })
        .await?;
        self.unlock(id).await
    }

    /// Deletes the lock if release `id` holds it.
    async fn unlock(&self, id: i64) -> Result<(), ReleaseError> {
        for _ in 0..ROUNDS {
            let Some(held) = self.cluster.get_versioned::<Lock>(LOCK).await? else {
                return Ok(());
            };
            if held.value.id != id {
                return Ok(());
            }
            let guards = [Guard::Unchanged(LOCK.into(), held.mod_revision)];
            if (self
                .cluster
                .commit(None, &guards, &[Write::Delete(LOCK.into())])
                .await)?
            {
                return Ok(());
            }
        }
        Err(ReleaseError::Contended)
    }
}

impl ReleaseLog for EtcdReleases {
    fn begin(&self, new: NewRelease) -> ReleaseFuture<'_, Result<i64, Holder>> {
        Box::pin(self.take(new))
    }

    fn finish(&self, id: i64, end: ReleaseEnd) -> ReleaseFuture<'_, ()> {
        Box::pin(async move {
            // How a deploy ended is worth a few tries (a replica that just resumed may find its connection gone).
            let mut attempt = 1;
            while let Err(error) = self.update(id, |r| r.ended(&end)).await {
                if attempt == FINISH_ATTEMPTS || !matches!(error, ReleaseError::Cluster(_)) {
                    return Err(error);
                }
                tracing::debug!(deploy = id, %error, "Recording the end of a deploy failed; trying again");
                tokio::time::sleep(FINISH_PAUSE).await;
                attempt += 1;
            }
            if let (true, Some(replaced)) = (end.ok, end.replaces) {
                self.update(replaced, |mut r| {
                    r.rolled_back_by = Some(id);
                    r
                })
                .await?;
            }
            self.unlock(id).await
        })
    }

    fn abort(&self, id: i64) -> ReleaseFuture<'_, ()> {
        Box::pin(async move {
            self.update(id, |mut r| {
                r.state = "failed".into();
                r
            })
            .await?;
            self.unlock(id).await
        })
    }

    fn get(&self, id: i64) -> ReleaseFuture<'_, Option<Release>> {
        Box::pin(async move {
            let found = self
                .cluster
                .get_versioned::<Record>(&release_key(id))
                .await?;
            Ok(found.map(|v| v.value.release()))
        })
    }

    fn recent(&self, limit: u32) -> ReleaseFuture<'_, Vec<Release>> {
        Box::pin(async move {
            let list: Vec<(String, Record)> = self
                .cluster
                .list_json_last(RELEASES, i64::from(limit))
                .await?;
            Ok(list.into_iter().map(|(_, r)| r.release()).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new() -> NewRelease {
        NewRelease {
            started_at: 1_700_000_000_000,
            trigger: "webhook".into(),
            started_by: "delivery d1".into(),
            commit: Some("abc".into()),
            branch: Some("main".into()),
            hosts: vec!["h1".into(), "h2".into()],
            rollback_of: None,
            holder: "root@box pid 7".into(),
        }
    }

    #[test]
    fn keys_sort_as_numbers() {
        assert_eq!(release_key(42), "deploy/releases/00000000000000000042");
        assert!(release_key(9) < release_key(10));
    }

    #[test]
    fn a_record_runs_then_ends() {
        let r = Record::new(3, &new(), "tend-a");
        assert_eq!(r.state, "running");
        let end = ReleaseEnd {
            at: 1_700_000_060_000,
            ok: false,
            summary: "table".into(),
            log: "h1 | x".into(),
            results: vec![],
            replaces: None,
            interrupted: true,
        };
        let shown = r.ended(&end).release();
        assert_eq!(shown.state, "interrupted");
        assert_eq!(shown.id, 3);
        assert_eq!(shown.started_by.as_deref(), Some("delivery d1"));
        assert!(shown.finished_at.is_some());
        let ok = ReleaseEnd {
            ok: true,
            interrupted: false,
            ..end
        };
        assert_eq!(ok.state(), "succeeded");
    }

    #[test]
    fn records_read_back_from_json() {
        let r = Record::new(1, &new(), "tend-b");
        let json = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<Record>(&json).unwrap(), r);
    }
}
