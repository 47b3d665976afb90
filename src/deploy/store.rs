//! The deploy's SQL: one row per deploy, that is per release (who, what, hosts, result, log), each host's result,
//! the deploy lock (one row at most) and the webhook deliveries seen (replay protection).

use rusqlite::{OptionalExtension, params};

use super::release::{Holder, HostOutcome, NewRelease, Release, ReleaseEnd};
use crate::store::{Store, StoreError};

/// Records a release and takes the lock in one transaction. A lock held by a holder that `alive` says is gone
/// (a crash) is taken over and its release marked abandoned. `Err(holder)` when another deploy holds it.
pub async fn begin(
    store: &Store,
    new: NewRelease,
    alive: fn(&str) -> bool,
) -> Result<Result<i64, Holder>, StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let held: Option<Holder> = tx
                .query_row(
                    "SELECT deploy_id, holder, since FROM deploy_lock WHERE id = 1",
                    [],
                    |r| {
                        Ok(Holder {
                            id: r.get(0)?,
                            holder: r.get(1)?,
                            since: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            if let Some(h) = held {
                if alive(&h.holder) {
                    return Ok(Err(h));
                }
                tx.execute(
                    "UPDATE deploys SET state = 'abandoned' WHERE id = ?1 AND state = 'running'",
                    [h.id],
                )?;
                tx.execute("DELETE FROM deploy_lock", [])?;
            }
            tx.execute(
                "INSERT INTO deploys (started_at, trigger, commit_sha, branch, hosts, state, started_by, rollback_of)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7)",
                params![
                    new.started_at,
                    new.trigger,
                    new.commit,
                    new.branch,
                    new.hosts.join(" "),
                    new.started_by,
                    new.rollback_of,
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO deploy_lock (id, deploy_id, holder, since) VALUES (1, ?1, ?2, ?3)",
                params![id, new.holder, new.started_at],
            )?;
            tx.commit()?;
            Ok(Ok(id))
        })
        .await
}

/// Records the end of release `id` (state, summary, log, each host's result; the release it replaced marked
/// rolled back when it succeeded) and releases the lock.
pub async fn finish(store: &Store, id: i64, end: ReleaseEnd) -> Result<(), StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let state = end.state();
            tx.execute(
                "UPDATE deploys SET finished_at = ?2, state = ?3, summary = ?4, log = ?5 WHERE id = ?1",
                params![id, end.at, state, end.summary, end.log],
            )?;
            for (position, h) in end.results.iter().enumerate() {
                tx.execute(
                    "INSERT OR REPLACE INTO deploy_hosts (deploy_id, position, host, result, seconds, detail, left_out)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![id, position as i64, h.host, h.result, h.seconds, h.detail, h.left_out],
                )?;
            }
            if let (true, Some(replaced)) = (end.ok, end.replaces) {
                tx.execute(
                    "UPDATE deploys SET rolled_back_by = ?1 WHERE id = ?2",
                    [id, replaced],
                )?;
            }
            tx.execute("DELETE FROM deploy_lock WHERE deploy_id = ?1", [id])?;
            tx.commit()
        })
        .await
}

/// Marks release `id` failed (it could not run) and releases the lock.
pub async fn abort(store: &Store, id: i64) -> Result<(), StoreError> {
    store
        .call(move |c| {
            c.execute("UPDATE deploys SET state = 'failed' WHERE id = ?1", [id])?;
            c.execute("DELETE FROM deploy_lock WHERE deploy_id = ?1", [id])
                .map(|_| ())
        })
        .await
}

/// Whether a webhook delivery id was seen already.
pub async fn delivery_seen(store: &Store, delivery: String) -> Result<bool, StoreError> {
    store
        .call(move |c| {
            c.query_row(
                "SELECT 1 FROM webhook_deliveries WHERE delivery = ?1",
                [delivery],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
        })
        .await
}

/// Records a webhook delivery id (ids older than 30 days are pruned: their commit is long deployed). False when
/// it was recorded already.
pub async fn record_delivery(
    store: &Store,
    delivery: String,
    now: i64,
) -> Result<bool, StoreError> {
    store
        .call(move |c| {
            c.execute(
                "DELETE FROM webhook_deliveries WHERE at < ?1",
                [now - 30 * 86_400_000],
            )?;
            c.execute(
                "INSERT OR IGNORE INTO webhook_deliveries (delivery, at) VALUES (?1, ?2)",
                params![delivery, now],
            )
            .map(|n| n == 1)
        })
        .await
}

/// Forgets a webhook delivery id (its deploy could not start, so the CI's redelivery may try again).
pub async fn forget_delivery(store: &Store, delivery: String) -> Result<(), StoreError> {
    store
        .call(move |c| {
            c.execute(
                "DELETE FROM webhook_deliveries WHERE delivery = ?1",
                [delivery],
            )
            .map(|_| ())
        })
        .await
}

const COLUMNS: &str = "id, started_at, finished_at, trigger, commit_sha, branch, hosts, state, summary, \
     started_by, rollback_of, rolled_back_by";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Release> {
    let time = |ms: i64| crate::core::time::rfc3339(crate::core::time::from_millis(ms));
    Ok(Release {
        id: r.get(0)?,
        started_at: time(r.get(1)?),
        finished_at: r.get::<_, Option<i64>>(2)?.map(time),
        trigger: r.get(3)?,
        commit: r.get(4)?,
        branch: r.get(5)?,
        hosts: r
            .get::<_, String>(6)?
            .split(' ')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect(),
        state: r.get(7)?,
        summary: r.get(8)?,
        started_by: r.get(9)?,
        rollback_of: r.get(10)?,
        rolled_back_by: r.get(11)?,
        results: Vec::new(),
    })
}

fn with_results(c: &rusqlite::Connection, mut release: Release) -> rusqlite::Result<Release> {
    let mut stmt = c.prepare_cached(
        "SELECT host, result, seconds, detail, left_out FROM deploy_hosts WHERE deploy_id = ?1 ORDER BY position",
    )?;
    release.results = stmt
        .query_map([release.id], |r| {
            Ok(HostOutcome {
                host: r.get(0)?,
                result: r.get(1)?,
                seconds: r.get(2)?,
                detail: r.get(3)?,
                left_out: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(release)
}

/// Release `id` with its hosts' results, if it exists.
pub async fn get(store: &Store, id: i64) -> Result<Option<Release>, StoreError> {
    store
        .call(move |c| {
            let found = c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM deploys WHERE id = ?1"),
                    [id],
                    row,
                )
                .optional()?;
            found.map(|r| with_results(c, r)).transpose()
        })
        .await
}

/// The last `limit` releases with their hosts' results, newest first.
pub async fn recent(store: &Store, limit: u32) -> Result<Vec<Release>, StoreError> {
    store
        .call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM deploys ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt
                .query_map([limit], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(|r| with_results(c, r)).collect()
        })
        .await
}

/// A deploy on the timeline: id, start and end (ms; `None` while running), state, commit.
pub type Span = (i64, i64, Option<i64>, String, Option<String>);

/// The deploys that ran at some point after `from_ms`, oldest first.
pub async fn since(store: &Store, from_ms: i64) -> Result<Vec<Span>, StoreError> {
    store
        .call(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, started_at, finished_at, state, commit_sha FROM deploys
                 WHERE COALESCE(finished_at, started_at) >= ?1 OR state = 'running' ORDER BY id",
            )?;
            let rows = stmt.query_map([from_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })
        .await
}
