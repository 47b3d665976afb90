//! The `local` provider's SQL: the processes it started (`local_instances`), so a restart re-adopts them.

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
