//! A batch of alerts counted by key before the outbox write: a burst of the same alert (a thousand identical
//! errors) is one row update with a count, not a thousand, and an alert whose key is known before it is
//! finished ([`super::Later::key`]) is not even finished when the batch already has it. Pure.

use std::collections::HashMap;

use super::message::Alert;
use super::store::Occurrences;

/// The alerts of one turn of the alert thread, each key once, with its count.
pub(super) struct Batch {
    occurrences: Vec<Occurrences>,
    index: HashMap<String, usize>,
    window_ms: i64,
}

impl Batch {
    /// An empty batch; occurrences more than `window_ms` apart are not merged (they belong to different rows).
    pub(super) fn new(window_ms: i64) -> Batch {
        Batch {
            occurrences: Vec::new(),
            index: HashMap::new(),
            window_ms,
        }
    }

    /// Counts one more occurrence of `key` at `at` (ms) when the batch already has it within the window; false
    /// when it does not (the alert must be added).
    pub(super) fn count(&mut self, key: &str, at: i64) -> bool {
        let Some(&i) = self.index.get(key) else {
            return false;
        };
        let o = &mut self.occurrences[i];
        let (first, last) = (o.first_at.min(at), o.last_at.max(at));
        if last - first >= self.window_ms {
            return false;
        }
        (o.first_at, o.last_at, o.count) = (first, last, o.count + 1);
        true
    }

    /// Adds an alert that happened at `at` (ms): counted with the same one when the batch has it.
    pub(super) fn add(&mut self, alert: Alert, at: i64) {
        let key = alert.key();
        if self.count(&key, at) {
            return;
        }
        self.index.insert(key, self.occurrences.len());
        self.occurrences.push(Occurrences {
            alert,
            first_at: at,
            last_at: at,
            count: 1,
        });
    }

    /// How many alerts it holds, counting repeats.
    pub(super) fn alerts(&self) -> u64 {
        self.occurrences.iter().map(|o| o.count as u64).sum()
    }

    /// Each distinct alert with its count, in the order they first came.
    pub(super) fn into_occurrences(self) -> Vec<Occurrences> {
        self.occurrences
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Event, Level};

    fn alert(about: &str) -> Alert {
        Alert::new(Event::LogError, about, Level::Error, about, "body")
    }

    #[test]
    fn the_same_key_is_counted_and_others_kept_in_order() {
        let mut b = Batch::new(1000);
        b.add(alert("a.rs:1"), 10);
        b.add(alert("b.rs:2"), 11);
        b.add(alert("a.rs:1"), 12);
        assert!(b.count("LogError:a.rs:1", 5));
        assert!(!b.count("LogError:c.rs:3", 13));
        assert_eq!(b.alerts(), 4);
        let o = b.into_occurrences();
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].alert.about, "a.rs:1");
        assert_eq!((o[0].count, o[0].first_at, o[0].last_at), (3, 5, 12));
        assert_eq!((o[1].count, o[1].first_at, o[1].last_at), (1, 11, 11));
    }

    #[test]
    fn occurrences_a_window_apart_stay_apart() {
        let mut b = Batch::new(100);
        b.add(alert("a.rs:1"), 0);
        assert!(!b.count("LogError:a.rs:1", 100));
        b.add(alert("a.rs:1"), 100);
        let o = b.into_occurrences();
        assert_eq!(o.len(), 2, "a later one is added as its own row");
        assert_eq!(o[1].first_at, 100);
    }
}
