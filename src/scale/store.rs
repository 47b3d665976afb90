//! The scaler's SQL: every decision with its inputs (`scale_decisions`) and the policy's learned memory per
//! fleet (the `meta` table), so a restart goes on from what was learned.

use super::forecast::Snapshot;
use crate::store::{Store, StoreError};

/// How often the policy's memory is written to the store (and once more at shutdown).
pub const MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// The `meta` key under which the policy's memory of a fleet is kept.
pub fn memory_key(prefix: &str) -> String {
    format!("scale.memory.{prefix}")
}

/// Why the memory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored memory is not what this tend writes.
    #[error("the stored memory is unreadable: {0}")]
    Json(#[from] serde_json::Error),
}

/// The memory kept for this fleet, if any (one short read, made when the orchestrator is built).
pub fn load_memory(store: &Store, prefix: &str) -> Result<Option<Snapshot>, MemoryError> {
    let json = store.meta_get(&memory_key(prefix))?;
    Ok(match json {
        Some(j) => Some(serde_json::from_str(&j)?),
        None => None,
    })
}

/// Writes this fleet's memory.
pub async fn save_memory(
    store: &Store,
    prefix: &str,
    snapshot: &Snapshot,
) -> Result<(), MemoryError> {
    let json = serde_json::to_string(snapshot)?;
    let key = memory_key(prefix);
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, json],
            )
        })
        .await?;
    Ok(())
}

/// One decision as stored: when, what, why, the inputs and what was done.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// When (ms).
    pub at: i64,
    /// `hold`, `add` or `remove`.
    pub action: &'static str,
    /// Instances added (1 for a removal).
    pub count: u32,
    /// The instance removed.
    pub instance: Option<String>,
    /// Why.
    pub reason: String,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Live instances seen.
    pub instances: i64,
    /// Median load seen.
    pub median: Option<f64>,
    /// The seed's predicted load after removing one.
    pub predicted: Option<f64>,
    /// Every instance with its state and load, as JSON.
    pub fleet: String,
    /// What was done.
    pub outcome: String,
}

/// Stores one decision.
pub async fn record_decision(store: &Store, row: DecisionRow) -> Result<(), StoreError> {
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO scale_decisions (at, action, count, instance, reason, dry_run, instances,
                    median, predicted, fleet, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                rusqlite::params![
                    row.at, row.action, row.count, row.instance, row.reason, row.dry_run, row.instances,
                    row.median, row.predicted, row.fleet, row.outcome
                ],
            )
            .map(|_| ())
        })
        .await
}

/// A stored decision, for reports and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDecision {
    /// `hold`, `add` or `remove`.
    pub action: String,
    /// Instances added (1 for a removal).
    pub count: u32,
    /// The instance removed.
    pub instance: Option<String>,
    /// Why.
    pub reason: String,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Live instances seen.
    pub instances: i64,
    /// Median load seen.
    pub median: Option<f64>,
    /// The inputs: every instance with its state and load, as JSON.
    pub fleet: String,
    /// What was done.
    pub outcome: String,
}

/// The last `limit` stored decisions, newest first.
pub fn recent_decisions(store: &Store, limit: u32) -> Result<Vec<StoredDecision>, StoreError> {
    store.blocking(|c| {
        let mut st = c.prepare(
            "SELECT action, count, instance, reason, dry_run, instances, median, fleet, outcome
             FROM scale_decisions ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| {
            Ok(StoredDecision {
                action: r.get(0)?,
                count: r.get(1)?,
                instance: r.get(2)?,
                reason: r.get(3)?,
                dry_run: r.get(4)?,
                instances: r.get(5)?,
                median: r.get(6)?,
                fleet: r.get(7)?,
                outcome: r.get(8)?,
            })
        })?;
        rows.collect()
    })
}

/// A decision on the timeline: when (ms), `hold`/`add`/`remove`, the count, live instances, median load, why.
pub type Point = (i64, String, u32, i64, Option<f64>, String);

/// The decisions made at or after `from_ms`, oldest first.
pub async fn since(store: &Store, from_ms: i64) -> Result<Vec<Point>, StoreError> {
    store
        .call(move |c| {
            let mut st = c.prepare(
                "SELECT at, action, count, instances, median, reason FROM scale_decisions
                 WHERE at >= ?1 ORDER BY at",
            )?;
            let rows = st.query_map([from_ms], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect()
        })
        .await
}

/// Every instance id the scaler observed since `since` (ms), from its stored decisions: DescribeInstances forgets
/// terminated instances within an hour, but their metrics are kept for weeks, so these ids find their history.
pub async fn seen_instances(store: &Store, since: i64) -> Result<Vec<String>, StoreError> {
    store
        .call(move |c| {
            let mut st = c.prepare(
                "SELECT DISTINCT json_extract(j.value, '$.id')
                 FROM scale_decisions AS d, json_each(d.fleet) AS j
                 WHERE d.at >= ?1 AND json_valid(d.fleet)",
            )?;
            let rows = st.query_map([since], |r| r.get::<_, Option<String>>(0))?;
            let ids: Vec<Option<String>> = rows.collect::<Result<_, _>>()?;
            Ok(ids.into_iter().flatten().collect())
        })
        .await
}
