//! What the policy learns from the load as it runs: how long a new instance takes to report, and how far demand
//! can rise over that time.
//!
//! Why: a reactive autoscaler is blind for boot + metric lag + one interval after a rise starts. Any fixed headroom
//! is either wasteful (calm load) or too thin (spiky load). Instead [`History`] records the fleet's demand (in
//! servers) at each observation, and for every past observation the largest rise of demand within the following
//! horizon (the measured boot-to-first-data delay plus one interval). The policy keeps capacity for the current
//! demand plus a high quantile of those rises, taken among past moments whose demand level was similar (within
//! ×1.5), so additive spikes (batch jobs) and multiplicative ones (web traffic) are both sized right. The quantile
//! follows the overload budget: a 0.1 % budget keeps capacity for the 99.9th-percentile rise. Until enough has
//! been seen, a prior fraction of the demand is used.
//!
//! Everything here is deterministic: time comes in as a parameter.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

/// How many learned rises are needed before the prior is dropped.
pub const MIN_LEARNED: usize = 60;
/// Rises among similar demand levels needed to use them alone (else all rises are used).
const MIN_SIMILAR: usize = 200;
/// Demand levels within this factor of the current one count as similar.
const SIMILAR_LEVEL: f64 = 1.5;
/// How many measured boot delays are remembered (the largest of them is used).
const BOOT_DELAYS_KEPT: usize = 8;

/// One observation of the whole fleet's demand.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: SystemTime,
    demand: f64,
}

/// A learned rise: at a moment with demand `level`, demand rose by `rise` (servers) within the horizon.
#[derive(Debug, Clone, Copy)]
struct Rise {
    at: SystemTime,
    level: f64,
    rise: f64,
}

/// The policy's memory of past observations, updated by [`History::record`] each interval.
#[derive(Debug, Clone, Default)]
pub struct History {
    samples: VecDeque<Sample>,
    rises: VecDeque<Rise>,
    boot_delays: VecDeque<Duration>,
    waiting: BTreeMap<String, SystemTime>,
}

impl History {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one observation: the fleet's estimated demand in servers (`None` when nothing could be estimated),
    /// and which instances have data now (`(id, launched_at, has_data)`) to measure the boot-to-data delay.
    /// `fallback_delay` is used as the horizon until a delay has been measured; `memory` bounds what is kept.
    pub fn record<'a>(
        &mut self,
        now: SystemTime,
        demand: Option<f64>,
        instances: impl Iterator<Item = (&'a str, SystemTime, bool)>,
        fallback_delay: Duration,
        interval: Duration,
        memory: Duration,
    ) {
        let mut seen = Vec::new();
        for (id, launched_at, has_data) in instances {
            seen.push(id.to_string());
            if has_data {
                if let Some(launched) = self.waiting.remove(id) {
                    let delay = now.duration_since(launched).unwrap_or_default();
                    self.boot_delays.push_back(delay);
                    if self.boot_delays.len() > BOOT_DELAYS_KEPT {
                        self.boot_delays.pop_front();
                    }
                }
            } else if !self.waiting.contains_key(id) && launched_at <= now {
                self.waiting.insert(id.to_string(), launched_at);
            }
        }
        // Instances that disappeared before reporting are forgotten.
        self.waiting.retain(|id, _| seen.iter().any(|s| s == id));

        if let Some(demand) = demand {
            self.samples.push_back(Sample { at: now, demand });
        }
        let horizon = self.horizon(fallback_delay, interval);
        self.learn_rises(now, horizon);
        while let Some(old) = self.rises.front() {
            match now.duration_since(old.at) {
                Ok(age) if age > memory => {
                    self.rises.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Turns every sample at least one horizon old into a learned rise, then forgets it.
    fn learn_rises(&mut self, now: SystemTime, horizon: Duration) {
        while let Some(first) = self.samples.front().copied() {
            let end = first.at + horizon;
            if end > now {
                break;
            }
            let peak = self
                .samples
                .iter()
                .skip(1)
                .take_while(|s| s.at <= end)
                .map(|s| s.demand)
                .fold(first.demand, f64::max);
            self.rises.push_back(Rise {
                at: first.at,
                level: first.demand,
                rise: peak - first.demand,
            });
            self.samples.pop_front();
        }
    }

    /// The time from a decision until capacity it adds can be seen: the largest measured boot-to-data delay
    /// (or `fallback_delay` before any was measured) plus one interval.
    pub fn horizon(&self, fallback_delay: Duration, interval: Duration) -> Duration {
        self.boot_delays
            .iter()
            .copied()
            .max()
            .unwrap_or(fallback_delay)
            + interval
    }

    /// How many rises have been learned.
    pub fn learned(&self) -> usize {
        self.rises.len()
    }

    /// The rise of demand (servers) to keep capacity for at the current `demand`: the `quantile` (0..1) of the
    /// learned rises at similar levels, or `prior · demand` while fewer than [`MIN_LEARNED`] rises are known
    /// (whichever is larger then).
    pub fn headroom(&self, demand: f64, quantile: f64, prior: f64) -> f64 {
        let prior_rise = prior * demand.max(0.0);
        if self.rises.is_empty() {
            return prior_rise;
        }
        let mut similar: Vec<f64> = self
            .rises
            .iter()
            .filter(|r| r.level <= demand * SIMILAR_LEVEL && r.level * SIMILAR_LEVEL >= demand)
            .map(|r| r.rise)
            .collect();
        if similar.len() < MIN_SIMILAR {
            similar = self.rises.iter().map(|r| r.rise).collect();
        }
        let learned = quantile_of(&mut similar, quantile).max(0.0);
        if self.rises.len() < MIN_LEARNED {
            learned.max(prior_rise)
        } else {
            learned
        }
    }
}

/// The `q` quantile (0..1) of `values` (nearest rank, rounding up); 0 when empty.
fn quantile_of(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize).clamp(1, values.len());
    let (_, v, _) = values.select_nth_unstable_by(rank - 1, |a, b| a.total_cmp(b));
    *v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile_of(&mut v, 0.999), 999.0);
        assert_eq!(quantile_of(&mut v, 1.0), 1000.0);
        assert_eq!(quantile_of(&mut [], 0.5), 0.0);
    }

    #[test]
    fn learns_boot_delay_and_rises() {
        let mut h = History::new();
        let m = Duration::from_secs(86_400);
        let i = Duration::from_secs(30);
        h.record(
            at(0),
            Some(1.0),
            [("a", at(0), false)].into_iter(),
            Duration::from_secs(300),
            i,
            m,
        );
        h.record(
            at(180),
            Some(1.0),
            [("a", at(0), true)].into_iter(),
            Duration::from_secs(300),
            i,
            m,
        );
        assert_eq!(
            h.horizon(Duration::from_secs(300), i),
            Duration::from_secs(210)
        );
        // Demand alternates 10 and 14 every 30 s: every rise within the horizon is 4 or 0.
        for k in 7..400u64 {
            let d = if k % 2 == 0 { 10.0 } else { 14.0 };
            h.record(
                at(k * 30),
                Some(d),
                [("a", at(0), true)].into_iter(),
                Duration::from_secs(300),
                i,
                m,
            );
        }
        assert!(h.learned() > MIN_LEARNED);
        assert_eq!(h.headroom(10.0, 0.999, 0.25), 4.0);
    }

    #[test]
    fn prior_applies_until_learned() {
        let h = History::new();
        assert_eq!(h.headroom(8.0, 0.999, 0.25), 2.0);
    }
}
