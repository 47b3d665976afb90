//! The context ring: the last `context_lines` log lines of every level (debug too, even when not printed), so
//! that an alert can carry the lines that led to it. Slots are reused, so keeping a line allocates nothing once
//! the ring is full.

use std::collections::VecDeque;

/// The last lines logged, oldest first.
pub(super) struct Ring {
    lines: VecDeque<String>,
    capacity: usize,
}

impl Ring {
    /// A ring keeping `capacity` lines (0 keeps none).
    pub(super) fn new(capacity: usize) -> Ring {
        Ring {
            lines: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Keeps `line`, dropping the oldest when full.
    pub(super) fn push(&mut self, line: &str) {
        if self.capacity == 0 {
            return;
        }
        let mut slot = if self.lines.len() >= self.capacity {
            self.lines.pop_front().unwrap_or_default()
        } else {
            String::new()
        };
        slot.clear();
        slot.push_str(line);
        self.lines.push_back(slot);
    }

    /// The kept lines without their line ends, oldest first.
    pub(super) fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.trim_end())
    }

    /// How many lines are kept.
    pub(super) fn len(&self) -> usize {
        self.lines.len()
    }

    /// The bytes [`Ring::copy_into`] appends.
    pub(super) fn copied_len(&self) -> usize {
        self.lines().map(|l| l.len() + 1).sum()
    }

    /// Appends every kept line and a `\n` after each to `out`.
    pub(super) fn copy_into(&self, out: &mut String) {
        for line in self.lines() {
            out.push_str(line);
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_lines() {
        let mut r = Ring::new(2);
        for l in ["a\n", "b\n", "c\n"] {
            r.push(l);
        }
        assert_eq!(r.lines().collect::<Vec<_>>(), ["b", "c"]);
        let mut out = String::new();
        r.copy_into(&mut out);
        assert_eq!(out, "b\nc\n");
        assert_eq!(r.copied_len(), out.len());
    }

    #[test]
    fn a_ring_of_nothing_keeps_nothing() {
        let mut r = Ring::new(0);
        r.push("a");
        assert_eq!(r.len(), 0);
    }
}
