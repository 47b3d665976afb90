//! The monitor's SQL: tracker state per target, raw check results, hourly aggregates and uptime over 24 h,
//! 7 d and 30 d. Writes come in batches (one transaction for many reports).

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::config::HistoryConfig;
use super::scheduler::Report;
use super::tracker::TrackerState;
use crate::core::time::millis;
use crate::store::{Store, StoreError};

/// Uptime percentages over 24 h, 7 d and 30 d (None until there is history).
pub type Uptimes = [Option<f64>; 3];

/// Writes each report's tracker state and raw result, in one transaction. `names` maps target index to name.
pub async fn save(
    store: &Store,
    names: Arc<[String]>,
    reports: Vec<Report>,
) -> Result<(), StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            {
                let mut state = tx.prepare_cached(
                    "INSERT INTO monitor_state (target, state, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(target) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                )?;
                let mut result = tx.prepare_cached(
                    "INSERT INTO monitor_results (target, at, up, response_ms, status, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for r in &reports {
                    let Some(name) = names.get(r.index) else { continue };
                    let o = &r.outcome;
                    let json = serde_json::to_string(&r.state).unwrap_or_default();
                    let at = millis(o.checked_at);
                    state.execute(params![name, json, at])?;
                    result.execute(params![
                        name,
                        at,
                        o.up,
                        o.response_time.as_millis() as i64,
                        o.status,
                        o.reason
                    ])?;
                }
            }
            tx.commit()
        })
        .await
}

/// The stored tracker state of each target in `names` (a missing or unreadable one starts afresh).
pub async fn load_states(
    store: &Store,
    names: Arc<[String]>,
) -> Result<Vec<TrackerState>, StoreError> {
    store
        .call(move |c| {
            let mut stmt = c.prepare("SELECT state FROM monitor_state WHERE target = ?1")?;
            let mut out = Vec::with_capacity(names.len());
            for n in names.iter() {
                let json: Option<String> = stmt.query_row([n], |r| r.get(0)).optional()?;
                out.push(
                    json.and_then(|j| serde_json::from_str(&j).ok())
                        .unwrap_or_default(),
                );
            }
            Ok(out)
        })
        .await
}

/// Uptime of every target with history, from raw results (recent) and hourly aggregates (older).
pub async fn uptimes(
    store: &Store,
    now: i64,
    history: &HistoryConfig,
) -> Result<HashMap<String, Uptimes>, StoreError> {
    let raw_from = now - history.raw_retention.as_millis() as i64;
    let windows = [24 * 3_600_000_i64, 7 * 24 * 3_600_000, 30 * 24 * 3_600_000];
    store
        .call(move |c| {
            let mut out: HashMap<String, Uptimes> = HashMap::new();
            for (i, w) in windows.iter().enumerate() {
                let from = now - w;
                let mut stmt = c.prepare_cached(
                    "SELECT target, SUM(ups), SUM(checks) FROM (
                        SELECT target, SUM(up) AS ups, COUNT(*) AS checks FROM monitor_results
                          WHERE at >= ?1 GROUP BY target
                        UNION ALL
                        SELECT target, SUM(ups), SUM(checks) FROM monitor_hourly
                          WHERE hour >= ?1 AND hour < ?2 GROUP BY target)
                     GROUP BY target",
                )?;
                let rows = stmt.query_map(params![from, raw_from.max(from)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
                for row in rows {
                    let (t, ups, checks) = row?;
                    if checks > 0 {
                        out.entry(t).or_default()[i] = Some(100.0 * ups as f64 / checks as f64);
                    }
                }
            }
            Ok(out)
        })
        .await
}

/// Rolls raw results older than `raw_retention` into hourly aggregates and drops aggregates older than
/// `hourly_retention`.
pub async fn rollup(store: &Store, now: i64, history: &HistoryConfig) -> Result<(), StoreError> {
    let raw_before = now - history.raw_retention.as_millis() as i64;
    let raw_before = raw_before - raw_before.rem_euclid(3_600_000);
    let hourly_before = now - history.hourly_retention.as_millis() as i64;
    store
        .call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO monitor_hourly (target, hour, checks, ups, response_ms_sum, response_ms_max)
                 SELECT target, at - (at % 3600000), COUNT(*), SUM(up), SUM(response_ms), MAX(response_ms)
                   FROM monitor_results WHERE at < ?1 GROUP BY target, at - (at % 3600000)
                 ON CONFLICT(target, hour) DO UPDATE SET checks = checks + excluded.checks,
                   ups = ups + excluded.ups, response_ms_sum = response_ms_sum + excluded.response_ms_sum,
                   response_ms_max = MAX(response_ms_max, excluded.response_ms_max)",
                [raw_before],
            )?;
            tx.execute("DELETE FROM monitor_results WHERE at < ?1", [raw_before])?;
            tx.execute("DELETE FROM monitor_hourly WHERE hour < ?1", [hourly_before])?;
            tx.commit()
        })
        .await
}
