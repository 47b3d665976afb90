//! What the policy learns from the load as it runs: how long a new instance takes to report, and how far demand
//! can rise over that time.
//!
//! Why: a reactive autoscaler is blind for boot + metric lag + one interval after a rise starts. Any fixed headroom
//! is either wasteful (calm load) or too thin (spiky load). Instead [`History`] records the fleet's demand (in
//! servers) at each observation, and for every past observation the largest rise of demand within the following
//! horizon (the measured boot-to-first-data delay plus one interval), together with what was known then:
//!
//! - the **level** (demand then),
//! - the recent **volatility** (mean absolute change between observations over the last half hour),
//! - the **trend** (least-squares slope of the last ten minutes, projected over the horizon, if rising),
//! - the **daily cycle**: the rise the seasonal profile predicted over the horizon, where the profile is, per
//!   minute of the day, the median over the days seen of that minute's mean demand (AWS predictive scaling /
//!   Netflix Scryer: yesterday's shape predicts today's ramp; recurring jobs are provisioned before they start).
//!
//! The headroom to keep is `base + quantile(residual / scale) · scale_now`, for every combination of a base
//! (nothing, the seasonal rise, the trend) and a scale (1: additive spikes, the level: multiplicative traffic,
//! the volatility: calm and stormy spells), and the policy uses the combination whose in-sample headroom is the
//! smallest on average: every combination covers the same quantile of what was seen, so the cheapest one is the
//! one that explains the load best. The quantile follows the overload budget: a 0.1 % budget keeps capacity for
//! the 99.9th-percentile rise. Until enough has been seen, a prior fraction of the demand is the floor.
//!
//! Everything here is deterministic: time comes in as a parameter.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many learned rises are needed before the prior is dropped.
pub const MIN_LEARNED: usize = 60;
/// How many measured boot delays are remembered (the largest of them is used).
const BOOT_DELAYS_KEPT: usize = 8;
/// Volatility is measured over this much recent history.
const VOLATILITY_SPAN: Duration = Duration::from_secs(1800);
/// The trend is fitted over this much recent history.
const TREND_SPAN: Duration = Duration::from_secs(600);
/// The models are re-fitted every this many observations (they change slowly).
const REFIT_EVERY: u32 = 10;
const DAY_MINUTES: u64 = 1440;

/// One observation of the whole fleet's demand.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: SystemTime,
    demand: f64,
    context: Context,
}

/// What was known at an observation, besides the demand.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Context {
    /// Recent volatility (servers per observation).
    pub volatility: f64,
    /// Rise the trend projects over the horizon (servers, 0 when falling).
    pub trend: f64,
    /// Rise the daily profile predicts over the horizon (servers, 0 when unknown or falling).
    pub seasonal: f64,
}

/// A learned rise: at a moment with demand `level` and `context`, demand rose by `rise` within the horizon.
#[derive(Debug, Clone, Copy)]
struct Rise {
    at: SystemTime,
    level: f64,
    rise: f64,
    context: Context,
}

/// A headroom model: which base is subtracted and which scale normalises the residual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    None,
    Seasonal,
    Trend,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Additive,
    Level,
    Volatility,
}
const BASES: [Base; 3] = [Base::None, Base::Seasonal, Base::Trend];
const SCALES: [Scale; 3] = [Scale::Additive, Scale::Level, Scale::Volatility];

fn base_of(b: Base, c: &Context) -> f64 {
    match b {
        Base::None => 0.0,
        Base::Seasonal => c.seasonal,
        Base::Trend => c.trend,
    }
}
fn scale_of(s: Scale, level: f64, c: &Context) -> f64 {
    match s {
        Scale::Additive => 1.0,
        Scale::Level => level.max(0.05),
        Scale::Volatility => c.volatility.max(0.01 * level).max(0.01),
    }
}

/// The fitted model: the base, the scale and the quantile of the normalised residual.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fit {
    base: Base,
    scale: Scale,
    q: f64,
}

/// The policy's memory of past observations, updated by [`History::record`] each interval.
#[derive(Debug, Clone, Default)]
pub struct History {
    samples: VecDeque<Sample>,
    recent: VecDeque<(SystemTime, f64)>,
    rises: VecDeque<Rise>,
    boot_delays: VecDeque<Duration>,
    waiting: BTreeMap<String, SystemTime>,
    /// Per minute since the epoch: (sum, count) of the demand observed in it.
    minutes: BTreeMap<u64, (f64, u32)>,
    /// The context at the last observation.
    now: Context,
    fit: Option<Fit>,
    fitted_quantile: f64,
    since_fit: u32,
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60
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

        let horizon = self.horizon(fallback_delay, interval);
        if let Some(demand) = demand {
            self.recent.push_back((now, demand));
            while self
                .recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t).unwrap_or_default() > VOLATILITY_SPAN)
            {
                self.recent.pop_front();
            }
            let e = self.minutes.entry(minute_of(now)).or_insert((0.0, 0));
            e.0 += demand;
            e.1 += 1;
            self.now = self.context(now, horizon);
            self.samples.push_back(Sample {
                at: now,
                demand,
                context: self.now,
            });
        }
        self.learn_rises(now, horizon);
        let oldest = minute_of(now).saturating_sub(memory.as_secs() / 60);
        while self
            .minutes
            .first_key_value()
            .is_some_and(|(m, _)| *m < oldest)
        {
            self.minutes.pop_first();
        }
        while let Some(old) = self.rises.front() {
            match now.duration_since(old.at) {
                Ok(age) if age > memory => {
                    self.rises.pop_front();
                }
                _ => break,
            }
        }
        self.since_fit += 1;
    }

    /// Volatility, trend and seasonal rise now.
    fn context(&self, now: SystemTime, horizon: Duration) -> Context {
        let n = self.recent.len();
        let volatility = if n >= 2 {
            self.recent
                .iter()
                .zip(self.recent.iter().skip(1))
                .map(|(a, b)| (b.1 - a.1).abs())
                .sum::<f64>()
                / (n - 1) as f64
        } else {
            0.0
        };
        // Least-squares slope over the trend span.
        let pts: Vec<(f64, f64)> = self
            .recent
            .iter()
            .filter(|(t, _)| now.duration_since(*t).unwrap_or_default() <= TREND_SPAN)
            .map(|(t, d)| {
                (
                    -now.duration_since(*t).unwrap_or_default().as_secs_f64(),
                    *d,
                )
            })
            .collect();
        let trend = if pts.len() >= 4 {
            let k = pts.len() as f64;
            let mx = pts.iter().map(|p| p.0).sum::<f64>() / k;
            let my = pts.iter().map(|p| p.1).sum::<f64>() / k;
            let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
            let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
            if sxx > 0.0 {
                (sxy / sxx * horizon.as_secs_f64()).max(0.0)
            } else {
                0.0
            }
        } else {
            0.0
        };
        Context {
            volatility,
            trend,
            seasonal: self.seasonal_rise(now, horizon),
        }
    }

    /// The daily profile at minute-of-day offset: median over past days of that minute's mean demand.
    fn profile(&self, minute: u64) -> Option<f64> {
        let mut v: Vec<f64> = (1..=7u64)
            .filter_map(|d| minute.checked_sub(d * DAY_MINUTES))
            .filter_map(|m| self.minutes.get(&m))
            .map(|(s, c)| s / f64::from((*c).max(1)))
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }

    /// The rise the profile predicts from now to the highest point within the horizon (0 when unknown).
    fn seasonal_rise(&self, now: SystemTime, horizon: Duration) -> f64 {
        let m = minute_of(now);
        let Some(here) = self.profile(m) else {
            return 0.0;
        };
        let until = minute_of(now + horizon);
        (m + 1..=until)
            .filter_map(|k| self.profile(k))
            .fold(here, f64::max)
            - here
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
                context: first.context,
            });
            self.samples.pop_front();
        }
    }

    /// Fits every model at `quantile` and keeps the one with the smallest mean headroom over what was seen.
    fn refit(&self, quantile: f64) -> Option<Fit> {
        if self.rises.is_empty() {
            return None;
        }
        let n = self.rises.len() as f64;
        let mut best: Option<(f64, Fit)> = None;
        let mut z = Vec::with_capacity(self.rises.len());
        for base in BASES {
            let mean_base = self
                .rises
                .iter()
                .map(|r| base_of(base, &r.context))
                .sum::<f64>()
                / n;
            if base != Base::None && mean_base <= 0.0 {
                continue;
            }
            for scale in SCALES {
                z.clear();
                z.extend(self.rises.iter().map(|r| {
                    (r.rise - base_of(base, &r.context)) / scale_of(scale, r.level, &r.context)
                }));
                let q = quantile_of(&mut z, quantile);
                let mean: f64 = self
                    .rises
                    .iter()
                    .map(|r| {
                        (base_of(base, &r.context) + q * scale_of(scale, r.level, &r.context))
                            .max(0.0)
                    })
                    .sum::<f64>()
                    / n;
                let fit = Fit { base, scale, q };
                if best.as_ref().is_none_or(|(m, _)| mean < *m - 1e-12) {
                    best = Some((mean, fit));
                }
            }
        }
        best.map(|(_, f)| f)
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

    /// The context (volatility, trend, seasonal rise) at the last observation.
    pub fn context_now(&self) -> Context {
        self.now
    }

    /// Re-fits the headroom models for `quantile` when due (every few observations, or when the quantile
    /// changed). Called by the policy after [`History::record`].
    pub fn fit(&mut self, quantile: f64) {
        if self.fit.is_none() || self.since_fit >= REFIT_EVERY || self.fitted_quantile != quantile {
            self.fit = self.refit(quantile);
            self.fitted_quantile = quantile;
            self.since_fit = 0;
        }
    }

    /// The model in use, in words (for decision reasons).
    pub fn model(&self) -> String {
        match self.fit {
            None => "prior".into(),
            Some(f) => format!("{:?}/{:?}", f.base, f.scale).to_lowercase(),
        }
    }

    /// The rise of demand (servers) to keep capacity for at the current `demand`: the fitted model's headroom
    /// (see the module docs), or at least `prior · demand` while fewer than [`MIN_LEARNED`] rises are known.
    pub fn headroom(&self, demand: f64, quantile: f64, prior: f64) -> f64 {
        let prior_rise = prior * demand.max(0.0);
        let fit = match self.fit {
            Some(f) if self.fitted_quantile == quantile => Some(f),
            _ => self.refit(quantile),
        };
        let Some(fit) = fit else {
            return prior_rise;
        };
        let c = &self.now;
        let learned = (base_of(fit.base, c) + fit.q * scale_of(fit.scale, demand, c)).max(0.0);
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
            Some(10.0),
            [("a", at(0), false)].into_iter(),
            Duration::from_secs(300),
            i,
            m,
        );
        h.record(
            at(180),
            Some(10.0),
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
    fn daily_profile_foresees_a_recurring_jump() {
        // Demand 5, and 9 from 10:00 to 11:00 every day: on the second day, minutes before 10:00, the profile
        // predicts the jump and the headroom covers it, though nothing has risen yet today.
        let (fallback, i, m) = (
            Duration::from_secs(180),
            Duration::from_secs(30),
            Duration::from_secs(7 * 86_400),
        );
        let mut h = History::new();
        let demand = |t: u64| {
            if (36_000..39_600).contains(&(t % 86_400)) {
                9.0
            } else {
                5.0
            }
        };
        let mut t = 0;
        while t < 86_400 + 36_000 - 120 {
            h.record(at(t), Some(demand(t)), std::iter::empty(), fallback, i, m);
            h.fit(0.999);
            t += 30;
        }
        assert_eq!(h.context_now().seasonal, 4.0);
        assert!(h.headroom(5.0, 0.999, 0.25) >= 4.0, "{}", h.model());
        // An hour earlier the profile predicts nothing.
        let mut early = History::new();
        let mut t = 0;
        while t < 86_400 + 32_400 {
            early.record(at(t), Some(demand(t)), std::iter::empty(), fallback, i, m);
            t += 30;
        }
        assert_eq!(early.context_now().seasonal, 0.0);
    }

    #[test]
    fn trend_projects_a_steady_ramp() {
        let mut h = History::new();
        let (fallback, i, m) = (
            Duration::from_secs(180),
            Duration::from_secs(30),
            Duration::from_secs(86_400),
        );
        // +0.1 server every 30 s: over the 210 s horizon, +0.7.
        for k in 0..40u64 {
            h.record(
                at(k * 30),
                Some(1.0 + 0.1 * k as f64),
                std::iter::empty(),
                fallback,
                i,
                m,
            );
        }
        assert!(
            (h.context_now().trend - 0.7).abs() < 1e-6,
            "{:?}",
            h.context_now()
        );
        assert!((h.context_now().volatility - 0.1).abs() < 1e-6);
    }

    #[test]
    fn picks_the_scale_that_explains_the_rises() {
        // Rises proportional to the level (10 % from 10 to 100): the level model is cheaper than additive.
        let mut h = History::new();
        let (fallback, i, m) = (
            Duration::from_secs(60),
            Duration::from_secs(30),
            Duration::from_secs(7 * 86_400),
        );
        for k in 0..2000u64 {
            let level = 10.0 + 90.0 * k as f64 / 2000.0;
            let d = if k % 2 == 0 { level } else { level * 1.1 };
            h.record(at(k * 30), Some(d), std::iter::empty(), fallback, i, m);
        }
        h.fit(0.99);
        assert!(h.model().ends_with("/level"), "{}", h.model());
        assert!((h.headroom(10.0, 0.99, 0.25) - 1.0).abs() < 0.2);
    }

    #[test]
    fn prior_applies_until_learned() {
        let h = History::new();
        assert_eq!(h.headroom(8.0, 0.999, 0.25), 2.0);
    }
}
