//! Pure grouping: which pending alerts become which messages now.
//!
//! An alert row counts every occurrence of its key inside one dedup window. The first message for a row waits
//! `group_wait` to gather duplicates; occurrences after it are reported once more when the window closes ("and
//! 37 more like this"), so no alert waits longer than the window. When more distinct rows fall due within a
//! minute than `storm_limit`, they collapse into one digest listing them.

use std::fmt::Write as _;
use std::time::Duration;

use crate::core::Level;

/// An alert row as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Row id.
    pub id: i64,
    /// Dedup key (an event name and what it is about).
    pub key: String,
    /// How serious.
    pub severity: Level,
    /// Subject without the severity prefix.
    pub subject: String,
    /// Body of the first occurrence.
    pub body: String,
    /// First occurrence, ms since the epoch.
    pub first_at: i64,
    /// Last occurrence, ms since the epoch.
    pub last_at: i64,
    /// Occurrences so far.
    pub count: i64,
    /// Occurrences already reported in a message.
    pub count_sent: i64,
}

/// The grouping settings.
#[derive(Debug, Clone, Copy)]
pub struct Grouping {
    /// Wait for duplicates before the first message.
    pub group_wait: Duration,
    /// Window of one row.
    pub dedup_window: Duration,
    /// Distinct messages a minute before a digest.
    pub storm_limit: usize,
}

/// A message to create now, and the rows it reports (each up to its current count).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Most serious severity among its rows.
    pub severity: Level,
    /// Subject without the severity prefix.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// `(row id, count reported)` for each row.
    pub rows: Vec<(i64, i64)>,
    /// The rows' keys.
    pub keys: Vec<String>,
    /// What identifies this message across replicas (the same alert planned on another replica gets the
    /// same claim): the key for a first message, `key+more` for the "more like this" one, the sorted keys for
    /// a digest.
    pub claim: String,
}

/// When a row falls due, or None when it has nothing unsent.
pub fn due_at(row: &Pending, g: &Grouping) -> Option<i64> {
    if row.count <= row.count_sent {
        return None;
    }
    let wait = if row.count_sent == 0 {
        g.group_wait
    } else {
        g.dedup_window
    };
    Some(row.first_at + wait.as_millis() as i64)
}

/// Plans the messages due at `now` (all unsent rows when `flush`), given how many messages went out in the
/// last minute. Returns them and the next time something falls due.
pub fn plan(
    rows: &[Pending],
    sent_last_minute: usize,
    now: i64,
    g: &Grouping,
    flush: bool,
) -> (Vec<Planned>, Option<i64>) {
    let mut due = Vec::new();
    let mut next: Option<i64> = None;
    for row in rows {
        let Some(at) = due_at(row, g) else { continue };
        if flush || at <= now {
            due.push(row);
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    if due.is_empty() {
        return (vec![], next);
    }
    let planned = if due.len() > 1 && sent_last_minute + due.len() > g.storm_limit {
        vec![digest(&due)]
    } else {
        due.iter().map(|row| single(row, g)).collect()
    };
    (planned, next)
}

fn single(row: &Pending, g: &Grouping) -> Planned {
    let new = row.count - row.count_sent;
    let mut subject = row.subject.clone();
    let mut body = row.body.clone();
    if row.count_sent == 0 {
        if new > 1 {
            let _ = write!(subject, " (and {} more like this)", new - 1);
            let _ = write!(
                body,
                "\n\nThis happened {new} times from {} to {}.",
                stamp(row.first_at),
                stamp(row.last_at)
            );
        }
    } else {
        subject = format!("{} ({new} more like this)", row.subject);
        let _ = write!(
            body,
            "\n\nThis happened {new} more times since the first message (in the {} from {}; last at {}).",
            crate::core::duration::exact(g.dedup_window),
            stamp(row.first_at),
            stamp(row.last_at)
        );
    }
    let claim = if row.count_sent == 0 {
        row.key.clone()
    } else {
        format!("{}+more", row.key)
    };
    Planned {
        severity: row.severity,
        subject,
        body,
        rows: vec![(row.id, row.count)],
        keys: vec![row.key.clone()],
        claim,
    }
}

fn digest(rows: &[&Pending]) -> Planned {
    let severity = rows
        .iter()
        .map(|r| r.severity)
        .max()
        .unwrap_or(Level::Error);
    let total: i64 = rows.iter().map(|r| r.count - r.count_sent).sum();
    let subject = format!("{} alerts at once ({total} events): digest", rows.len());
    let mut body = String::from(
        "More alerts than the storm limit fell due together; they are listed here in one message.\n\n",
    );
    for row in rows {
        let n = row.count - row.count_sent;
        let _ = writeln!(
            body,
            "- {}: {}{}",
            row.severity.as_upper(),
            row.subject,
            if n > 1 {
                format!(" (×{n})")
            } else {
                String::new()
            }
        );
    }
    body.push_str("\nFirst occurrence of each:\n");
    for row in rows {
        let first_line = row.body.lines().next().unwrap_or("");
        let _ = writeln!(body, "\n== {} [{}]\n{}", row.subject, row.key, first_line);
    }
    let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    let claim = format!("Digest:{}", sorted.join("\n"));
    Planned {
        severity,
        subject,
        body,
        rows: rows.iter().map(|r| (r.id, r.count)).collect(),
        keys,
        claim,
    }
}

fn stamp(ms: i64) -> String {
    crate::core::time::rfc3339(crate::core::time::from_millis(ms))
}

/// Delay before retry number `attempts` (1 = first retry): doubling from `initial`, capped at `max`.
pub fn backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Grouping = Grouping {
        group_wait: Duration::from_secs(5),
        dedup_window: Duration::from_secs(600),
        storm_limit: 3,
    };

    fn row(id: i64, key: &str, first_at: i64, count: i64, count_sent: i64) -> Pending {
        Pending {
            id,
            key: key.into(),
            severity: Level::Error,
            subject: format!("boom {key}"),
            body: "details".into(),
            first_at,
            last_at: first_at + 100,
            count,
            count_sent,
        }
    }

    #[test]
    fn a_new_alert_waits_group_wait_then_goes_with_its_count() {
        let rows = [row(1, "a", 0, 1000, 0)];
        let (p, next) = plan(&rows, 0, 4_999, &G, false);
        assert!(p.is_empty());
        assert_eq!(next, Some(5_000));
        let (p, _) = plan(&rows, 0, 5_000, &G, false);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].subject, "boom a (and 999 more like this)");
        assert!(p[0].body.contains("1000 times"));
        assert_eq!(p[0].rows, vec![(1, 1000)]);
    }

    #[test]
    fn later_duplicates_go_out_when_the_window_closes() {
        let rows = [row(1, "a", 0, 38, 1)];
        assert!(plan(&rows, 0, 599_999, &G, false).0.is_empty());
        let (p, _) = plan(&rows, 0, 600_000, &G, false);
        assert_eq!(p[0].subject, "boom a (37 more like this)");
    }

    #[test]
    fn nothing_unsent_is_never_due() {
        assert_eq!(due_at(&row(1, "a", 0, 5, 5), &G), None);
        assert_eq!(
            plan(&[row(1, "a", 0, 5, 5)], 0, 10_000_000, &G, false),
            (vec![], None)
        );
    }

    #[test]
    fn a_storm_becomes_one_digest() {
        let rows: Vec<_> = (0..50).map(|i| row(i, &format!("k{i}"), 0, 1, 0)).collect();
        let (p, _) = plan(&rows, 0, 5_000, &G, false);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].rows.len(), 50);
        assert!(p[0].subject.starts_with("50 alerts at once"));
        assert!(p[0].body.contains("boom k49"));
    }

    #[test]
    fn the_limit_counts_messages_already_sent_this_minute() {
        let rows: Vec<_> = (0..2).map(|i| row(i, &format!("k{i}"), 0, 1, 0)).collect();
        assert_eq!(plan(&rows, 0, 5_000, &G, false).0.len(), 2);
        assert_eq!(plan(&rows, 2, 5_000, &G, false).0.len(), 1);
    }

    #[test]
    fn flush_sends_everything_unsent_now() {
        let rows = [row(1, "a", 0, 1, 0), row(2, "b", 0, 3, 1)];
        let (p, _) = plan(&rows, 0, 1, &G, true);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(backoff(1, s(2), s(300)), s(2));
        assert_eq!(backoff(2, s(2), s(300)), s(4));
        assert_eq!(backoff(8, s(2), s(300)), s(256));
        assert_eq!(backoff(9, s(2), s(300)), s(300));
        assert_eq!(backoff(1000, s(2), s(300)), s(300));
    }
}
