//! The deploy's SQL: one row per deploy (who, what, hosts, result, log), the deploy lock (one row at most) and
//! the webhook deliveries seen (replay protection).

use rusqlite::{OptionalExtension, params};

use crate::store::{Store, StoreError};

/// Who holds the lock: the deploy id, the holder (`user@host pid N`) and since when (ms).
pub type Holder = (i64, String, i64);

/// What a new deploy records.
#[derive(Debug, Clone)]
pub struct NewDeploy {
    /// When (ms).
    pub started_at: i64,
    /// `cli`, `webhook`, ...
    pub trigger: String,
    /// The commit, when known.
    pub commit: Option<String>,
    /// The branch, when known.
    pub branch: Option<String>,
    /// The hosts, space-separated.
    pub hosts: String,
    /// Who takes the lock.
    pub holder: String,
}

/// Records a deploy and takes the lock in one transaction. A lock held by a holder that `alive` says is gone
/// (a crash) is taken over and its deploy marked abandoned. `Err(holder)` when another deploy holds it.
pub async fn begin(
    store: &Store,
    new: NewDeploy,
    alive: fn(&str) -> bool,
) -> Result<Result<i64, Holder>, StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let held: Option<Holder> = tx
                .query_row(
                    "SELECT deploy_id, holder, since FROM deploy_lock WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((id, who, since)) = held {
                if alive(&who) {
                    return Ok(Err((id, who, since)));
                }
                tx.execute(
                    "UPDATE deploys SET state = 'abandoned' WHERE id = ?1 AND state = 'running'",
                    [id],
                )?;
                tx.execute("DELETE FROM deploy_lock", [])?;
            }
            tx.execute(
                "INSERT INTO deploys (started_at, trigger, commit_sha, branch, hosts, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
                params![
                    new.started_at,
                    new.trigger,
                    new.commit,
                    new.branch,
                    new.hosts
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

/// Records the end of deploy `id` (`succeeded` or `failed`, the summary table and the log) and releases the lock.
pub async fn finish(
    store: &Store,
    id: i64,
    at: i64,
    ok: bool,
    summary: String,
    log: String,
) -> Result<(), StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE deploys SET finished_at = ?2, state = ?3, summary = ?4, log = ?5 WHERE id = ?1",
                params![id, at, if ok { "succeeded" } else { "failed" }, summary, log],
            )?;
            tx.execute("DELETE FROM deploy_lock WHERE deploy_id = ?1", [id])?;
            tx.commit()
        })
        .await
}

/// Marks deploy `id` failed (it could not run) and releases the lock.
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

/// One deploy as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployRow {
    /// The id.
    pub id: i64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
    /// What started it.
    pub trigger: String,
    /// The commit.
    pub commit: Option<String>,
    /// The branch.
    pub branch: Option<String>,
    /// The hosts.
    pub hosts: Vec<String>,
    /// running, succeeded, failed, abandoned.
    pub state: String,
    /// The summary table.
    pub summary: Option<String>,
}

const COLUMNS: &str =
    "id, started_at, finished_at, trigger, commit_sha, branch, hosts, state, summary";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeployRow> {
    let time = |ms: i64| crate::core::time::rfc3339(crate::core::time::from_millis(ms));
    Ok(DeployRow {
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
    })
}

/// Deploy `id`, if it exists.
pub async fn get(store: &Store, id: i64) -> Result<Option<DeployRow>, StoreError> {
    store
        .call(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM deploys WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })
        .await
}

/// The last `limit` deploys, newest first.
pub async fn recent(store: &Store, limit: u32) -> Result<Vec<DeployRow>, StoreError> {
    store
        .call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM deploys ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], row)?;
            rows.collect()
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
