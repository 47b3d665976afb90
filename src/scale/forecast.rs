//! What the policy learns from the load as it runs: how long a new instance takes to report, and how far demand
//! can rise over that time.
//!
//! Why: a reactive autoscaler is blind for boot + metric lag + one interval after a rise starts. Any fixed headroom
//! is either wasteful (calm load) or too thin (spiky load). Instead [`History`] records the fleet's demand (in
//! servers) at each observation and learns, for every past observation, how far demand rose above its *level*
//! within the following horizon (the measured boot-to-first-data delay plus one interval). The level is the
//! highest demand seen within the last `settle` span: spikes come in clusters, so the forecast does not drop the
//! moment one spike ends, and the fleet does not shed capacity it will need again one boot later.
//!
//! The policy keeps capacity for the level plus a high quantile of those rises, taken among past moments whose
//! level was similar (within ×1.5), so additive spikes (batch jobs) and multiplicative ones (web traffic) are both
//! sized right. The quantile follows the overload budget: a 0.1 % budget keeps capacity for the 99.9th-percentile
//! rise. A 99.9th percentile cannot be read off a few hundred samples (their largest understates it), so with
//! fewer than [`TAIL_SAMPLES`] samples beyond it the tail is extrapolated: exponentially, through the median and the
//! highest quantile that can be read. Until [`MIN_LEARNED`] rises are known nothing is claimed: there is no
//! headroom, and the policy is the configured high/low rule.
//!
//! It need not start empty: [`History::learn_past`] learns from the fleet's metric history read from the provider
//! (CloudWatch keeps it for weeks) exactly as if it had been observed live. The history's resolution tells basic
//! (5-minute) from detailed (1-minute) monitoring; a coarser metric is seen later, so the horizon grows by the
//! difference.
//!
//! Everything here is deterministic: time comes in as a parameter.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::config::PolicyConfig;
use crate::core::time::{from_millis, millis};

/// How many learned rises are needed before the prior is dropped.
pub const MIN_LEARNED: usize = 60;
/// Rises among similar demand levels needed to use them alone (else all rises are used).
const MIN_SIMILAR: usize = 200;
/// Demand levels within this factor of the current one count as similar.
const SIMILAR_LEVEL: f64 = 1.5;
/// How many measured boot delays are remembered (the largest of them is used).
const BOOT_DELAYS_KEPT: usize = 8;

/// One observation of the whole fleet's demand, with its level (the highest demand within `settle`) then.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: SystemTime,
    demand: f64,
    level: f64,
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
    recent: VecDeque<(SystemTime, f64)>,
    rises: VecDeque<Rise>,
    boot_delays: VecDeque<Duration>,
    waiting: BTreeMap<String, SystemTime>,
    joined: BTreeMap<String, SystemTime>,
    resolution: Option<Duration>,
}

/// What [`History`] keeps across restarts, compactly (times in Unix milliseconds), so a restarted tend neither
/// forgets the load it learned nor falls back to the prior headroom.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Measured boot-to-first-data delays (ms).
    pub boot_delays: Vec<u64>,
    /// Observations whose horizon has not passed: (at, demand, level).
    pub samples: Vec<(i64, f64, f64)>,
    /// Recent demand, for the level: (at, demand).
    pub recent: Vec<(i64, f64)>,
    /// Learned rises: (at, level, rise).
    pub rises: Vec<(i64, f64, f64)>,
    /// The metric's resolution seen in the provider's history (ms), if it was read.
    #[serde(default)]
    pub resolution: Option<u64>,
}

impl History {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// What to keep across a restart.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            boot_delays: self
                .boot_delays
                .iter()
                .map(|d| d.as_millis() as u64)
                .collect(),
            samples: self
                .samples
                .iter()
                .map(|s| (millis(s.at), s.demand, s.level))
                .collect(),
            recent: self
                .recent
                .iter()
                .map(|(at, d)| (millis(*at), *d))
                .collect(),
            rises: self
                .rises
                .iter()
                .map(|r| (millis(r.at), r.level, r.rise))
                .collect(),
            resolution: self.resolution.map(|r| r.as_millis() as u64),
        }
    }

    /// The memory a snapshot kept. Non-finite numbers (a damaged snapshot) are dropped, not learned.
    pub fn restore(s: &Snapshot) -> History {
        let ok = |x: &f64| x.is_finite();
        History {
            boot_delays: s
                .boot_delays
                .iter()
                .rev()
                .take(BOOT_DELAYS_KEPT)
                .rev()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            samples: s
                .samples
                .iter()
                .filter(|(_, d, l)| ok(d) && ok(l))
                .map(|&(at, demand, level)| Sample {
                    at: from_millis(at),
                    demand,
                    level,
                })
                .collect(),
            recent: s
                .recent
                .iter()
                .filter(|(_, d)| ok(d))
                .map(|&(at, d)| (from_millis(at), d))
                .collect(),
            rises: s
                .rises
                .iter()
                .filter(|(_, l, r)| ok(l) && ok(r))
                .map(|&(at, level, rise)| Rise {
                    at: from_millis(at),
                    level,
                    rise,
                })
                .collect(),
            resolution: s.resolution.map(Duration::from_millis),
            ..History::default()
        }
    }

    /// Learns from the fleet's past demand (servers, oldest first, `resolution` apart) as if it had been observed
    /// live: every point is recorded at its own time, so its rises are learned over the same horizon. Points not
    /// after what the memory already holds are skipped (a restart that kept its memory reads only what is new).
    pub fn learn_past(
        &mut self,
        past: &[(SystemTime, f64)],
        resolution: Duration,
        config: &PolicyConfig,
    ) {
        if !resolution.is_zero() {
            self.resolution = Some(resolution);
        }
        let newest = self.newest();
        for &(at, demand) in past {
            if newest.is_none_or(|n| at > n) && demand.is_finite() && demand >= 0.0 {
                self.record(at, Some(demand), config);
            }
        }
    }

    /// The time of the newest observation in the memory.
    pub fn newest(&self) -> Option<SystemTime> {
        let samples = self.samples.back().map(|s| s.at);
        let recent = self.recent.back().map(|r| r.0);
        let rises = self.rises.back().map(|r| r.at);
        samples.max(recent).max(rises)
    }

    /// The newest demand observed (servers).
    pub fn last_demand(&self) -> Option<f64> {
        self.recent.back().map(|r| r.1)
    }

    /// How much history the learned rises cover at `now` (from the oldest one kept).
    pub fn span(&self, now: SystemTime) -> Duration {
        self.rises.front().map_or(Duration::ZERO, |r| {
            now.duration_since(r.at).unwrap_or_default()
        })
    }

    /// The metric's resolution seen in the provider's history, if any was read.
    pub fn resolution(&self) -> Option<Duration> {
        self.resolution
    }

    /// How much later than 1-minute data the metric shows a change: basic monitoring's 5-minute points come up to
    /// 4 minutes later. Added to the horizon before a boot delay is measured and to the boot grace.
    pub fn extra_lag(&self) -> Duration {
        self.resolution.map_or(Duration::ZERO, |r| {
            r.saturating_sub(Duration::from_secs(60))
        })
    }

    /// Notes which instances have data now (`(id, launched_at, has_data)`): measures the boot-to-data delay of
    /// new ones, and remembers for one `window` which ones just joined. Call before [`History::record`].
    pub fn note_instances<'a>(
        &mut self,
        now: SystemTime,
        instances: impl Iterator<Item = (&'a str, SystemTime, bool)>,
        config: &PolicyConfig,
    ) {
        let mut seen = Vec::new();
        for (id, launched_at, has_data) in instances {
            seen.push(id.to_string());
            if has_data {
                if let Some(launched) = self.waiting.remove(id) {
                    self.joined.insert(id.to_string(), now);
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
        self.joined
            .retain(|_, at| now.duration_since(*at).unwrap_or_default() <= config.window);
    }

    /// Whether the instance first reported data within the last `window`: its average covers only the time it
    /// served, while the others' still cover the smaller fleet before it joined.
    pub fn just_joined(&self, id: &str) -> bool {
        self.joined.contains_key(id)
    }

    /// Records one observation of the fleet's demand in servers (`None` when nothing could be estimated) and
    /// learns the rises whose horizon has passed. From `config`: `boot_grace` is the horizon's delay until one has
    /// been measured, `memory` bounds what is kept, `settle` is the span of the level.
    pub fn record(&mut self, now: SystemTime, demand: Option<f64>, config: &PolicyConfig) {
        if let Some(demand) = demand {
            self.recent.push_back((now, demand));
            while self
                .recent
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at).unwrap_or_default() > config.settle)
            {
                self.recent.pop_front();
            }
            let level = self.level(now, config.settle).unwrap_or(demand);
            self.samples.push_back(Sample {
                at: now,
                demand,
                level,
            });
        }
        let horizon = self.horizon(config.boot_grace, config.interval);
        self.learn_rises(now, horizon);
        while let Some(old) = self.rises.front() {
            match now.duration_since(old.at) {
                Ok(age) if age > config.memory => {
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
                level: first.level,
                rise: peak - first.level,
            });
            self.samples.pop_front();
        }
    }

    /// The time from a decision until capacity it adds can be seen: the largest measured boot-to-data delay (it
    /// includes the metric's first period) or, before any was measured, `fallback_delay` plus the metric's
    /// [`History::extra_lag`]; plus one interval.
    pub fn horizon(&self, fallback_delay: Duration, interval: Duration) -> Duration {
        self.boot_delays
            .iter()
            .copied()
            .max()
            .unwrap_or(fallback_delay + self.extra_lag())
            + interval
    }

    /// The level of demand: the highest demand observed within `settle` before `now` (`None` if none was).
    pub fn level(&self, now: SystemTime, settle: Duration) -> Option<f64> {
        self.recent
            .iter()
            .filter(|(at, _)| *at <= now && now.duration_since(*at).unwrap_or_default() <= settle)
            .map(|(_, d)| *d)
            .reduce(f64::max)
    }

    /// The rises so far of samples whose horizon has not passed yet: a lower bound of what they will teach, so
    /// a rise under way counts at once, not one horizon later (when the fleet may already have shrunk).
    fn pending(&self) -> impl Iterator<Item = Rise> + '_ {
        self.samples.iter().enumerate().filter_map(|(i, s)| {
            let peak = self
                .samples
                .iter()
                .skip(i + 1)
                .map(|l| l.demand)
                .reduce(f64::max)?;
            Some(Rise {
                at: s.at,
                level: s.level,
                rise: peak - s.level,
            })
        })
    }

    /// How many rises have been learned.
    pub fn learned(&self) -> usize {
        self.rises.len()
    }

    /// The rise of demand (servers) to keep capacity for at the current `demand`: the `quantile` (0..1) of the
    /// learned rises at similar levels; `None` while fewer than [`MIN_LEARNED`] rises are known (nothing is
    /// invented before then).
    pub fn headroom(&self, demand: f64, quantile: f64) -> Option<f64> {
        if self.rises.len() < MIN_LEARNED {
            return None;
        }
        let rises = || self.rises.iter().copied().chain(self.pending());
        let mut similar: Vec<f64> = rises()
            .filter(|r| r.level <= demand * SIMILAR_LEVEL && r.level * SIMILAR_LEVEL >= demand)
            .map(|r| r.rise)
            .collect();
        if similar.len() < MIN_SIMILAR {
            similar = rises().map(|r| r.rise).collect();
        }
        Some(tail_quantile(&mut similar, quantile).max(0.0))
    }
}

/// Samples beyond an empirical quantile needed to read it directly; with fewer, the tail is extrapolated from
/// this many largest samples.
const TAIL_SAMPLES: usize = 20;

/// The `q` quantile of the distribution `values` were drawn from. Read directly when at least [`TAIL_SAMPLES`]
/// values lie beyond it; otherwise extrapolated along an exponential tail fitted to the largest [`TAIL_SAMPLES`]
/// (peaks over a threshold: the threshold `u` is the next largest value, the scale the mean excess over it), since
/// the largest of a few hundred values understates a 99.9th percentile.
fn tail_quantile(values: &mut [f64], q: f64) -> f64 {
    let n = values.len();
    let beyond = (1.0 - q).max(1e-12);
    if n as f64 * beyond >= TAIL_SAMPLES as f64 || n <= TAIL_SAMPLES {
        return quantile_of(values, q);
    }
    values.sort_unstable_by(|a, b| b.total_cmp(a));
    let u = values[TAIL_SAMPLES];
    let scale = values[..TAIL_SAMPLES].iter().map(|v| v - u).sum::<f64>() / TAIL_SAMPLES as f64;
    u + scale * (TAIL_SAMPLES as f64 / (n as f64 * beyond)).ln()
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

    fn config(settle: u64) -> PolicyConfig {
        PolicyConfig {
            boot_grace: Duration::from_secs(300),
            interval: Duration::from_secs(30),
            memory: Duration::from_secs(86_400),
            settle: Duration::from_secs(settle),
            ..PolicyConfig::default()
        }
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile_of(&mut v, 0.999), 999.0);
        assert_eq!(quantile_of(&mut v, 1.0), 1000.0);
        assert_eq!(quantile_of(&mut [], 0.5), 0.0);
    }

    #[test]
    fn a_tail_is_read_when_enough_samples_lie_beyond_it() {
        let mut v: Vec<f64> = (1..=20_000).map(f64::from).collect();
        assert_eq!(tail_quantile(&mut v, 0.999), 19_980.0);
    }

    #[test]
    fn a_tail_beyond_the_samples_is_extrapolated_exponentially() {
        // Exponential(1) quantiles: Q(p) = ln(1/(1-p)), at 500 evenly spaced probabilities i/501 (the largest is
        // Q(0.998) = 6.2); the true Q(0.999) is 6.91.
        let mut v: Vec<f64> = (1..=500)
            .map(|i| (1.0 / (1.0 - f64::from(i) / 501.0)).ln())
            .collect();
        let largest = v.iter().copied().fold(0.0, f64::max);
        let q = tail_quantile(&mut v, 0.999);
        assert!(
            q > largest,
            "{q} should lie beyond the largest sample {largest}"
        );
        assert!((q - 6.91).abs() < 1.0, "{q} should be near the true 6.91");
        // A constant sample has no tail.
        assert_eq!(tail_quantile(&mut [3.0; 100], 0.999), 3.0);
    }

    #[test]
    fn learns_boot_delay_and_rises() {
        let mut h = History::new();
        let c = config(0);
        h.note_instances(at(0), [("a", at(0), false)].into_iter(), &c);
        h.record(at(0), Some(1.0), &c);
        h.note_instances(at(180), [("a", at(0), true)].into_iter(), &c);
        assert!(h.just_joined("a"));
        h.record(at(180), Some(1.0), &c);
        assert_eq!(
            h.horizon(c.boot_grace, c.interval),
            Duration::from_secs(210)
        );
        // Demand alternates 10 and 14 every 30 s: every rise within the horizon is 4 (from 10) or 0 (from 14).
        for k in 7..400u64 {
            let d = if k % 2 == 0 { 10.0 } else { 14.0 };
            h.note_instances(at(k * 30), [("a", at(0), true)].into_iter(), &c);
            h.record(at(k * 30), Some(d), &c);
        }
        assert!(!h.just_joined("a"), "joined more than a window ago");
        assert!(h.learned() > MIN_LEARNED);
        // Similar levels (10 and 14 are within ×1.5) give rises of 0 and 4: the tail is extrapolated beyond 4.
        let headroom = h.headroom(10.0, 0.999).unwrap();
        assert!((4.0..8.0).contains(&headroom), "{headroom}");
    }

    #[test]
    fn the_level_is_the_highest_demand_within_settle() {
        let mut h = History::new();
        let c = config(120);
        for (t, d) in [(0, 5.0), (30, 9.0), (60, 6.0), (90, 5.0)] {
            h.record(at(t), Some(d), &c);
        }
        assert_eq!(h.level(at(90), c.settle), Some(9.0));
        assert_eq!(
            h.level(at(151), c.settle),
            Some(6.0),
            "the spike at 30 s has settled"
        );
    }

    #[test]
    fn a_rise_under_way_counts_before_its_horizon_passes() {
        let mut h = History::new();
        let c = config(0);
        // An hour at 2 servers teaches rises of 0; then demand jumps to 6 within one interval.
        for k in 0..120u64 {
            h.record(at(k * 30), Some(2.0), &c);
        }
        let calm = h.headroom(2.0, 0.999).unwrap();
        h.record(at(120 * 30), Some(6.0), &c);
        let learned_now = h.learned();
        let after = h.headroom(2.0, 0.999).unwrap();
        assert_eq!(calm, 0.0);
        assert!(after >= 4.0, "the jump of 4 counts at once: {after}");
        // It was not learned the slow way yet: its horizon (330 s) has not passed.
        h.record(at(121 * 30), Some(6.0), &c);
        assert_eq!(h.learned(), learned_now + 1);
    }

    #[test]
    fn a_snapshot_restores_what_was_learned() {
        let mut h = History::new();
        let c = config(300);
        h.note_instances(at(0), [("a", at(0), false)].into_iter(), &c);
        h.note_instances(at(150), [("a", at(0), true)].into_iter(), &c);
        for k in 0..400u64 {
            let d = 5.0 + (k % 7) as f64;
            h.record(at(k * 30), Some(d), &c);
        }
        let snap = h.snapshot();
        let json = serde_json::to_string(&snap).unwrap();
        let back = History::restore(&serde_json::from_str(&json).unwrap());
        assert_eq!(back.snapshot(), snap);
        assert_eq!(back.learned(), h.learned());
        assert_eq!(back.headroom(8.0, 0.999), h.headroom(8.0, 0.999));
        assert_eq!(
            back.level(at(399 * 30), c.settle),
            h.level(at(399 * 30), c.settle)
        );
        assert_eq!(
            back.horizon(c.boot_grace, c.interval),
            Duration::from_secs(180)
        );
    }

    #[test]
    fn nothing_is_claimed_until_enough_is_learned() {
        let mut h = History::new();
        assert_eq!(h.headroom(8.0, 0.999), None);
        let c = config(0);
        // 40 rises learned (50 samples, 11 within the last horizon): still too few.
        for k in 0..50u64 {
            h.record(at(k * 30), Some(8.0), &c);
        }
        assert!(h.learned() < MIN_LEARNED);
        assert_eq!(h.headroom(8.0, 0.999), None);
    }

    #[test]
    fn the_past_is_learned_as_if_observed_and_only_once() {
        let c = config(300);
        // Two hours of 1-minute history: flat at 1.5 servers.
        let past: Vec<(SystemTime, f64)> = (0..120u64).map(|k| (at(k * 60), 1.5)).collect();
        let mut h = History::new();
        h.learn_past(&past, Duration::from_secs(60), &c);
        assert!(h.learned() >= MIN_LEARNED, "{}", h.learned());
        assert_eq!(h.headroom(1.5, 0.9995), Some(0.0));
        assert_eq!(h.newest(), Some(at(119 * 60)));
        assert_eq!(h.span(at(120 * 60)), Duration::from_secs(120 * 60));
        // Read again (a new leader, the same history): nothing is learned twice.
        let learned = h.learned();
        h.learn_past(&past, Duration::from_secs(60), &c);
        assert_eq!(h.learned(), learned);
        // Spiky history: every 20 minutes demand doubles for 3 minutes.
        let spiky: Vec<(SystemTime, f64)> = (0..120u64)
            .map(|k| (at(k * 60), if k % 20 < 3 { 3.0 } else { 1.5 }))
            .collect();
        let mut h = History::new();
        h.learn_past(&spiky, Duration::from_secs(60), &c);
        let rise = h.headroom(1.5, 0.9995).unwrap();
        assert!(rise >= 1.5, "the doubling is kept as headroom: {rise}");
    }

    #[test]
    fn basic_monitoring_lengthens_the_horizon() {
        let c = config(300);
        let mut h = History::new();
        assert_eq!(
            h.horizon(c.boot_grace, c.interval),
            Duration::from_secs(330)
        );
        let past: Vec<(SystemTime, f64)> = (0..24u64).map(|k| (at(k * 300), 2.0)).collect();
        h.learn_past(&past, Duration::from_secs(300), &c);
        assert_eq!(h.resolution(), Some(Duration::from_secs(300)));
        assert_eq!(h.extra_lag(), Duration::from_secs(240));
        assert_eq!(
            h.horizon(c.boot_grace, c.interval),
            Duration::from_secs(570)
        );
        let back = History::restore(&h.snapshot());
        assert_eq!(back.extra_lag(), Duration::from_secs(240));
    }
}
