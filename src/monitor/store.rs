//! The monitor's SQL: tracker state per target, raw check results with their phase timings, hourly aggregates,
//! uptime over 24 h, 7 d and 30 d, the charts' series, ad-hoc silences and the down alerts held back during
//! maintenance. Writes come in batches (one transaction for many reports). Silences and held alerts sit behind
//! these functions alone, so a shared (etcd) store can later stand in for them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};

use super::check::Phase;
use super::config::HistoryConfig;
use super::hold::Held;
use super::maintenance::Silence;
use super::scheduler::Report;
use super::series::{DAY_MS, DAYS, HOUR_MS, HOURS, Series};
use super::tracker::TrackerState;
use crate::core::time::{from_millis, millis};
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
                    "INSERT INTO monitor_results (target, at, up, response_ms, status, reason, dns_us,
                        connect_us, tls_us, ttfb_us, transfer_us, failed_phase)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?;
                for r in &reports {
                    let Some(name) = names.get(r.index) else { continue };
                    let o = &r.outcome;
                    let json = serde_json::to_string(&r.state).unwrap_or_default();
                    let at = millis(o.checked_at);
                    state.execute(params![name, json, at])?;
                    let us = |p: Phase| o.phases.get(p).as_micros() as i64;
                    result.execute(params![
                        name,
                        at,
                        o.up,
                        o.response_time.as_millis() as i64,
                        o.status,
                        o.reason,
                        us(Phase::Dns),
                        us(Phase::Connect),
                        us(Phase::Tls),
                        us(Phase::Ttfb),
                        us(Phase::Transfer),
                        o.failed_phase.map(Phase::as_str),
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

/// The charts' series of every target in `names`, from the history: phase means per hour over the last
/// 24 hours (raw results) and checks per day over the last 30 days (raw results, then hourly aggregates).
pub async fn series(
    store: &Store,
    names: Arc<[String]>,
    now: i64,
    history: &HistoryConfig,
) -> Result<Vec<Series>, StoreError> {
    let hours_from = (now.div_euclid(HOUR_MS) - HOURS as i64 + 1) * HOUR_MS;
    let days_from = (now.div_euclid(DAY_MS) - DAYS as i64 + 1) * DAY_MS;
    let raw_from = (now - history.raw_retention.as_millis() as i64).max(days_from);
    store
        .call(move |c| {
            let index: HashMap<&str, usize> =
                names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
            let mut out = vec![Series::default(); names.len()];
            let mut hours = c.prepare(
                "SELECT target, at / ?2, COUNT(*), SUM(COALESCE(dns_us, 0)), SUM(COALESCE(connect_us, 0)),
                    SUM(COALESCE(tls_us, 0)), SUM(COALESCE(ttfb_us, response_ms * 1000)),
                    SUM(COALESCE(transfer_us, 0))
                 FROM monitor_results WHERE at >= ?1 GROUP BY target, at / ?2",
            )?;
            let rows = hours.query_map(params![hours_from, HOUR_MS], |r| {
                let mut sums = [0f32; 5];
                for (i, s) in sums.iter_mut().enumerate() {
                    *s = r.get::<_, i64>(3 + i)? as f32 / 1000.0;
                }
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, sums))
            })?;
            for row in rows {
                let (target, hour, checks, sums) = row?;
                if let Some(&i) = index.get(target.as_str()) {
                    out[i].add_hour(hour, checks as u32, sums);
                }
            }
            let mut days = c.prepare(
                "SELECT target, at / ?3, COUNT(*), SUM(up) FROM monitor_results WHERE at >= ?2
                   GROUP BY target, at / ?3
                 UNION ALL
                 SELECT target, hour / ?3, SUM(checks), SUM(ups) FROM monitor_hourly
                   WHERE hour >= ?1 AND hour < ?2 GROUP BY target, hour / ?3",
            )?;
            let rows = days.query_map(params![days_from, raw_from, DAY_MS], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
            })?;
            for row in rows {
                let (target, day, checks, ups) = row?;
                if let Some(&i) = index.get(target.as_str()) {
                    out[i].add_day(day, checks as u32, ups as u32);
                }
            }
            Ok(out)
        })
        .await
}

/// Records a silence of `target` (a name or glob) from `since` to `until`; returns its id.
pub async fn add_silence(store: &Store, silence: Silence) -> Result<i64, StoreError> {
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO monitor_silences (target, since, until, reason, by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    silence.target,
                    millis(silence.since),
                    millis(silence.until),
                    silence.reason,
                    silence.by
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
}

/// The silences not yet over at `now`, soonest end first (an indexed read: cheap enough per alert).
pub async fn silences(store: &Store, now: SystemTime) -> Result<Vec<Silence>, StoreError> {
    let now = millis(now);
    store
        .call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, target, since, until, reason, by FROM monitor_silences WHERE until > ?1
                 ORDER BY until",
            )?;
            let rows = st.query_map([now], |r| {
                Ok(Silence {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    since: from_millis(r.get(2)?),
                    until: from_millis(r.get(3)?),
                    reason: r.get(4)?,
                    by: r.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
}

/// Ends every silence of `target` (as it was written: a name or a glob) and drops expired ones; how many
/// were in force.
pub async fn clear_silences(
    store: &Store,
    target: String,
    now: SystemTime,
) -> Result<usize, StoreError> {
    let now = millis(now);
    store
        .call(move |c| {
            let cleared = c.execute(
                "DELETE FROM monitor_silences WHERE target = ?1 AND until > ?2",
                params![target, now],
            )?;
            c.execute("DELETE FROM monitor_silences WHERE until <= ?1", [now])?;
            Ok(cleared)
        })
        .await
}

/// The down alerts held back, by target.
pub async fn held(store: &Store) -> Result<BTreeMap<String, Held>, StoreError> {
    store
        .call(|c| {
            let mut st = c.prepare("SELECT target, since, reason, held_at FROM monitor_held")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Held {
                        since: from_millis(r.get(1)?),
                        reason: r.get(2)?,
                        held_at: from_millis(r.get(3)?),
                    },
                ))
            })?;
            rows.collect()
        })
        .await
}

/// Remembers a held down alert of `target`.
pub async fn hold(store: &Store, target: String, held: Held) -> Result<(), StoreError> {
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO monitor_held (target, since, reason, held_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(target) DO UPDATE SET since = excluded.since, reason = excluded.reason,
                   held_at = excluded.held_at",
                params![
                    target,
                    millis(held.since),
                    held.reason,
                    millis(held.held_at)
                ],
            )
            .map(|_| ())
        })
        .await
}

/// Forgets the held down alert of `target` (sent, or its outage is over).
pub async fn release(store: &Store, target: String) -> Result<(), StoreError> {
    store
        .call(move |c| {
            c.execute("DELETE FROM monitor_held WHERE target = ?1", [target])
                .map(|_| ())
        })
        .await
}
