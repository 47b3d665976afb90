//! Demand estimation through scaling transients.
//!
//! Each instance reports its load averaged over a window and delayed by the metric lag, so the loads describe the
//! fleet as it was `lag` to `lag + window` ago. Right after the fleet changes, the plain estimate "median load ×
//! instances serving now" is wrong: after a removal the survivors still report the load they carried when the
//! removed instance shared it (demand looks lower, which invites the next removal), and when new instances start
//! reporting, the old ones still report the load from before they helped (demand looks higher, a false rise).
//!
//! [`Transients`] remembers when each instance first reported data and when reporting instances disappeared, and
//! gives the *effective* serving count the loads correspond to: a newly reporting instance counts for the share of
//! the window it has been serving, a removed one for the share of the window in which it still served. Without
//! any recent change the effective count is exactly the serving count.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::policy::Fleet;

/// Removals are forgotten after this many windows + lags (they no longer matter by then).
const KEEP_REMOVALS: u32 = 4;

/// What the policy remembers about fleet changes, updated by [`Transients::update`] each interval.
#[derive(Debug, Clone, Default)]
pub struct Transients {
    /// When each instance was first seen with data (`None`: it had data when first seen, an old instance).
    first_data: BTreeMap<String, Option<SystemTime>>,
    /// Instances seen without data so far.
    without_data: BTreeMap<String, ()>,
    /// When reporting instances were seen gone.
    removed: VecDeque<SystemTime>,
    /// Whether anything was observed yet.
    started: bool,
}

impl Transients {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records this interval's fleet.
    pub fn update(&mut self, fleet: &Fleet, now: SystemTime, window: Duration, lag: Duration) {
        let mut first_data = BTreeMap::new();
        let mut without_data = BTreeMap::new();
        for o in &fleet.instances {
            if o.load.is_some() {
                let first = match self.first_data.get(&o.id) {
                    Some(first) => *first,
                    None => self.started.then_some(now),
                };
                first_data.insert(o.id.clone(), first);
            } else {
                without_data.insert(o.id.clone(), ());
            }
        }
        let gone = self
            .first_data
            .keys()
            .filter(|id| !first_data.contains_key(*id) && !without_data.contains_key(*id))
            .count();
        for _ in 0..gone {
            self.removed.push_back(now);
        }
        let keep = (window + lag) * KEEP_REMOVALS;
        while self
            .removed
            .front()
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() > keep)
        {
            self.removed.pop_front();
        }
        self.first_data = first_data;
        self.without_data = without_data;
        self.started = true;
    }

    /// The number of serving instances the reported loads correspond to (see the module docs). `missing` counts
    /// serving instances past boot grace without data (as serving).
    pub fn effective_serving(
        &self,
        fleet: &Fleet,
        missing: usize,
        now: SystemTime,
        window: Duration,
        lag: Duration,
    ) -> f64 {
        let w = window.as_secs_f64().max(1.0);
        let since = |t: SystemTime| now.duration_since(t).unwrap_or_default().as_secs_f64();
        let weights: Vec<f64> = fleet
            .instances
            .iter()
            .filter(|o| o.load.is_some())
            .map(|o| match self.first_data.get(&o.id).copied().flatten() {
                Some(first) => (since(first) / w).clamp(0.0, 1.0),
                None => 1.0,
            })
            .collect();
        // New reporters weigh less only beside instances that reported before them (whose windows still show
        // the fleet without them); when all are new, their loads describe the fleet as it is.
        let reporting = if weights.iter().any(|x| *x >= 1.0) {
            weights.iter().sum()
        } else {
            weights.len() as f64
        };
        let lag = lag.as_secs_f64();
        let removed: f64 = self
            .removed
            .iter()
            .map(|&t| (1.0 - (since(t) - lag) / w).clamp(0.0, 1.0))
            .sum();
        reporting + missing as f64 + removed
    }

    /// Whether the fleet changed recently enough that the loads still show the transient.
    pub fn in_transient(&self, now: SystemTime, window: Duration, lag: Duration) -> bool {
        let w = window.as_secs_f64().max(1.0);
        let since = |t: SystemTime| now.duration_since(t).unwrap_or_default().as_secs_f64();
        self.first_data.values().flatten().any(|&t| since(t) < w)
            || self
                .removed
                .iter()
                .any(|&t| since(t) < lag.as_secs_f64() + w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::policy::{InstanceState, Observed};
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn fleet(ids: &[(&str, Option<f64>)]) -> Fleet {
        Fleet {
            instances: ids
                .iter()
                .map(|(id, load)| Observed {
                    id: (*id).into(),
                    launched_at: UNIX_EPOCH,
                    state: InstanceState::Running,
                    load: *load,
                })
                .collect(),
        }
    }

    #[test]
    fn removal_counts_until_the_loads_catch_up() {
        let (w, lag) = (Duration::from_secs(60), Duration::from_secs(60));
        let mut t = Transients::new();
        let four = fleet(&[
            ("a", Some(50.0)),
            ("b", Some(50.0)),
            ("c", Some(50.0)),
            ("d", Some(50.0)),
        ]);
        t.update(&four, at(0), w, lag);
        assert_eq!(t.effective_serving(&four, 0, at(0), w, lag), 4.0);
        assert!(!t.in_transient(at(0), w, lag));
        let three = fleet(&[("a", Some(50.0)), ("b", Some(50.0)), ("c", Some(50.0))]);
        t.update(&three, at(30), w, lag);
        // The survivors still report the load shared by four.
        assert_eq!(t.effective_serving(&three, 0, at(30), w, lag), 4.0);
        assert!(t.in_transient(at(30), w, lag));
        assert_eq!(t.effective_serving(&three, 0, at(120), w, lag), 3.5);
        assert_eq!(t.effective_serving(&three, 0, at(150), w, lag), 3.0);
        assert!(!t.in_transient(at(151), w, lag));
    }

    #[test]
    fn new_reporter_counts_for_its_share_of_the_window() {
        let (w, lag) = (Duration::from_secs(60), Duration::from_secs(60));
        let mut t = Transients::new();
        let two = fleet(&[("a", Some(90.0)), ("b", Some(90.0)), ("n", None)]);
        t.update(&two, at(0), w, lag);
        let three = fleet(&[("a", Some(90.0)), ("b", Some(90.0)), ("n", Some(60.0))]);
        t.update(&three, at(30), w, lag);
        assert_eq!(t.effective_serving(&three, 0, at(30), w, lag), 2.0);
        assert_eq!(t.effective_serving(&three, 0, at(60), w, lag), 2.5);
        assert_eq!(t.effective_serving(&three, 0, at(90), w, lag), 3.0);
        assert_eq!(t.effective_serving(&three, 1, at(90), w, lag), 4.0);
    }

    #[test]
    fn a_fleet_that_starts_reporting_together_counts_in_full() {
        let (w, lag) = (Duration::from_secs(60), Duration::from_secs(60));
        let mut t = Transients::new();
        t.update(&fleet(&[("a", None), ("b", None)]), at(0), w, lag);
        let both = fleet(&[("a", Some(90.0)), ("b", Some(90.0))]);
        t.update(&both, at(30), w, lag);
        assert_eq!(t.effective_serving(&both, 0, at(30), w, lag), 2.0);
    }
}
