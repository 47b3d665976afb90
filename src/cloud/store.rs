//! The `local` provider's SQL: the processes it started (`local_instances`), so a restart re-adopts them, and
//! their load readings (`local_load`), so the scaler can learn from their history.

use std::time::SystemTime;

use crate::core::time::{from_millis, millis};
use crate::store::{Store, StoreError};

/// One process the `local` provider started.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its instance id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The client token it was created with.
    pub token: String,
    /// Its pid (and process group).
    pub pid: i64,
    /// Its start time in clock ticks since boot (tells a reused pid apart).
    pub start: u64,
    /// Its port.
    pub port: u16,
    /// When it was launched.
    pub launched_at: SystemTime,
}

/// Every recorded process, by id.
pub async fn records(store: &Store) -> Result<Vec<Record>, StoreError> {
    store
        .call(|c| {
            let mut st = c.prepare(
                "SELECT id, name, token, pid, start, port, launched_at FROM local_instances ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Record {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    token: r.get(2)?,
                    pid: r.get(3)?,
                    start: r.get::<_, i64>(4)? as u64,
                    port: r.get::<_, i64>(5)? as u16,
                    launched_at: from_millis(r.get(6)?),
                })
            })?;
            rows.collect()
        })
        .await
}

/// Forgets a process.
pub async fn forget(store: &Store, id: String) -> Result<(), StoreError> {
    store
        .call(move |c| {
            c.execute("DELETE FROM local_instances WHERE id = ?1", [id])
                .map(|_| ())
        })
        .await
}

/// Records a new process.
pub async fn insert(store: &Store, r: Record) -> Result<(), StoreError> {
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO local_instances (id, name, token, pid, start, port, launched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    r.id,
                    r.name,
                    r.token,
                    r.pid,
                    r.start as i64,
                    i64::from(r.port),
                    millis(r.launched_at)
                ],
            )
            .map(|_| ())
        })
        .await
}

/// How long load readings are kept (as CloudWatch keeps 1-minute data).
pub const LOAD_KEPT: std::time::Duration = std::time::Duration::from_secs(15 * 86_400);

/// Records load readings `(id, at ms, load)` and forgets those older than [`LOAD_KEPT`].
pub async fn record_loads(store: &Store, rows: Vec<(String, i64, f64)>) -> Result<(), StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            {
                let mut st =
                    tx.prepare("INSERT INTO local_load (id, at, load) VALUES (?1, ?2, ?3)")?;
                for (id, at, load) in &rows {
                    st.execute(rusqlite::params![id, at, load])?;
                }
            }
            if let Some(newest) = rows.iter().map(|r| r.1).max() {
                let oldest = newest - LOAD_KEPT.as_millis() as i64;
                tx.execute("DELETE FROM local_load WHERE at < ?1", [oldest])?;
            }
            tx.commit()
        })
        .await
}

/// The readings `(id, at ms, load)` of `ids` within `[since, until)` ms, oldest first.
pub async fn load_history(
    store: &Store,
    ids: Vec<String>,
    since: i64,
    until: i64,
) -> Result<Vec<(String, i64, f64)>, StoreError> {
    store
        .call(move |c| {
            let mut st = c.prepare(
                "SELECT id, at, load FROM local_load WHERE at >= ?1 AND at < ?2 ORDER BY at",
            )?;
            let rows = st.query_map([since, until], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let all: Vec<(String, i64, f64)> = rows.collect::<Result<_, _>>()?;
            Ok(all.into_iter().filter(|r| ids.contains(&r.0)).collect())
        })
        .await
}
