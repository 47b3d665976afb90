//! The durable outbox in SQLite: alert rows (one per key per dedup window), the messages planned from them,
//! and one delivery record per message and notifier.
//!
//! Every state change is one transaction, so a crash leaves either the old or the new state. The one duplicate
//! this cannot rule out: a notifier that accepted a message (SMTP's `250`) just before a crash, before the
//! delivery was recorded; the message is sent again after the restart. Nothing else is sent twice or lost.

use rusqlite::{Connection, OptionalExtension, params};

use super::message::{Alert, Message};
use super::plan::{Pending, Planned};
use crate::core::Level;
use crate::core::time::from_millis;

/// An alert that happened `count` times, from `first_at` to `last_at` (ms), as one turn of the alert thread saw
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrences {
    /// The alert (its first occurrence's text).
    pub alert: Alert,
    /// The first occurrence.
    pub first_at: i64,
    /// The last occurrence.
    pub last_at: i64,
    /// How many.
    pub count: i64,
}

/// Records occurrences: the same key inside the window adds to the row's count, otherwise a new row.
pub fn record(
    conn: &mut Connection,
    batch: &[Occurrences],
    window_ms: i64,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut find = tx.prepare_cached(
            "SELECT id FROM alerts WHERE key = ?1 AND first_at > ?2 ORDER BY first_at DESC LIMIT 1",
        )?;
        let mut bump = tx.prepare_cached(
            "UPDATE alerts SET count = count + ?3, last_at = MAX(last_at, ?2) WHERE id = ?1",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO alerts (key, severity, subject, body, first_at, last_at, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for o in batch {
            let key = o.alert.key();
            let existing: Option<i64> = find
                .query_row(params![key, o.first_at - window_ms], |r| r.get(0))
                .optional()?;
            match existing {
                Some(id) => {
                    bump.execute(params![id, o.last_at, o.count])?;
                }
                None => {
                    insert.execute(params![
                        key,
                        o.alert.severity.as_str(),
                        o.alert.subject,
                        o.alert.body,
                        o.first_at,
                        o.last_at,
                        o.count
                    ])?;
                }
            }
        }
    }
    tx.commit()
}

/// Rows with occurrences not yet reported.
pub fn pending(conn: &Connection) -> rusqlite::Result<Vec<Pending>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, key, severity, subject, body, first_at, last_at, count, count_sent
         FROM alerts WHERE count > count_sent ORDER BY first_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Pending {
            id: r.get(0)?,
            key: r.get(1)?,
            severity: Level::parse(&r.get::<_, String>(2)?).unwrap_or(Level::Error),
            subject: r.get(3)?,
            body: r.get(4)?,
            first_at: r.get(5)?,
            last_at: r.get(6)?,
            count: r.get(7)?,
            count_sent: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Messages created since `since` (ms).
pub fn sent_since(conn: &Connection, since: i64) -> rusqlite::Result<usize> {
    conn.query_row(
        "SELECT COUNT(*) FROM messages WHERE created_at >= ?1",
        [since],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
}

/// Stores planned messages, a delivery per notifier, and marks their rows reported; one transaction.
pub fn create_messages(
    conn: &mut Connection,
    planned: &[Planned],
    notifiers: &[String],
    now: i64,
) -> rusqlite::Result<Vec<i64>> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(planned.len());
    for p in planned {
        tx.execute(
            "INSERT INTO messages (created_at, severity, subject, body, keys, claim)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                now,
                p.severity.as_str(),
                p.subject,
                p.body,
                p.keys.join("\n"),
                p.claim
            ],
        )?;
        let id = tx.last_insert_rowid();
        for n in notifiers {
            tx.execute(
                "INSERT INTO deliveries (message_id, notifier, next_at) VALUES (?1, ?2, ?3)",
                params![id, n, now],
            )?;
        }
        for (row, count) in &p.rows {
            tx.execute(
                "UPDATE alerts SET count_sent = ?2 WHERE id = ?1",
                params![row, count],
            )?;
        }
        ids.push(id);
    }
    tx.commit()?;
    Ok(ids)
}

/// A delivery to attempt.
#[derive(Debug, Clone)]
pub struct Due {
    /// The message.
    pub message: Message,
    /// The notifier's name.
    pub notifier: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The message's claim across replicas.
    pub claim: String,
}

/// Deliveries whose time has come, oldest first.
pub fn due(conn: &Connection, now: i64, limit: usize) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.id, m.created_at, m.severity, m.subject, m.body, m.keys, d.notifier, d.attempts, m.claim
         FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.delivered_at IS NULL AND d.next_at <= ?1
         ORDER BY d.next_at, m.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit as i64], |r| {
        Ok(Due {
            message: Message {
                id: r.get(0)?,
                created_at: from_millis(r.get(1)?),
                severity: Level::parse(&r.get::<_, String>(2)?).unwrap_or(Level::Error),
                subject: r.get(3)?,
                body: r.get(4)?,
                keys: r.get::<_, String>(5)?.lines().map(str::to_string).collect(),
            },
            notifier: r.get(6)?,
            attempts: r.get::<_, i64>(7)? as u32,
            claim: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// The earliest pending delivery time, if any.
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT MIN(next_at) FROM deliveries WHERE delivered_at IS NULL",
        [],
        |r| r.get(0),
    )
}

/// Marks a delivery done.
pub fn delivered(
    conn: &Connection,
    message: i64,
    notifier: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE deliveries SET delivered_at = ?3, attempts = attempts + 1, last_error = NULL
         WHERE message_id = ?1 AND notifier = ?2",
        params![message, notifier, now],
    )
    .map(|_| ())
}

/// Records a failed attempt and when to try again.
pub fn failed(
    conn: &Connection,
    message: i64,
    notifier: &str,
    next_at: i64,
    error: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE deliveries SET attempts = attempts + 1, next_at = ?3, last_error = ?4
         WHERE message_id = ?1 AND notifier = ?2",
        params![message, notifier, next_at, error],
    )
    .map(|_| ())
}

/// Records that another replica delivered the message (`by`): done here too, without sending.
pub fn delivered_by_peer(
    conn: &Connection,
    message: i64,
    notifier: &str,
    now: i64,
    by: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE deliveries SET delivered_at = ?3, last_error = ?4 WHERE message_id = ?1 AND notifier = ?2",
        params![message, notifier, now, format!("delivered by {by}")],
    )
    .map(|_| ())
}

/// Puts a delivery off until `next_at` without counting an attempt (another replica is delivering it).
pub fn defer(
    conn: &Connection,
    message: i64,
    notifier: &str,
    next_at: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE deliveries SET next_at = ?3 WHERE message_id = ?1 AND notifier = ?2",
        params![message, notifier, next_at],
    )
    .map(|_| ())
}

/// Deliveries of one message not yet done.
pub fn undelivered_of(conn: &Connection, message: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM deliveries WHERE message_id = ?1 AND delivered_at IS NULL",
        [message],
        |r| r.get(0),
    )
}

/// Deliveries not yet done (for metrics and `flush`).
pub fn undelivered(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM deliveries WHERE delivered_at IS NULL",
        [],
        |r| r.get(0),
    )
}

/// One delivery's state: `(notifier, delivered, attempts, last error)`.
pub type DeliveryState = (String, bool, u32, Option<String>);

/// The state of one message's deliveries.
pub fn deliveries_of(conn: &Connection, message: i64) -> rusqlite::Result<Vec<DeliveryState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT notifier, delivered_at IS NOT NULL, attempts, last_error FROM deliveries
         WHERE message_id = ?1 ORDER BY notifier",
    )?;
    let rows = stmt.query_map([message], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u32, r.get(3)?))
    })?;
    rows.collect()
}

/// Forgets delivered messages and reported rows older than `before` (ms).
pub fn prune(conn: &mut Connection, before: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM deliveries WHERE delivered_at IS NOT NULL AND message_id IN
           (SELECT id FROM messages WHERE created_at < ?1)",
        [before],
    )?;
    tx.execute(
        "DELETE FROM messages WHERE created_at < ?1
           AND id NOT IN (SELECT message_id FROM deliveries)",
        [before],
    )?;
    tx.execute(
        "DELETE FROM alerts WHERE last_at < ?1 AND count_sent >= count",
        [before],
    )?;
    tx.commit()
}
