//! `[scale]`: the policy's settings (high, low, min, max, interval, window, …), dry run, the balancer and
//! the extra signals; every problem reported with its key.

use std::time::Duration;

use serde::Deserialize;

use crate::balancer::BalancerConfig;
use crate::core::Invalid;

/// `[scale]`: when to add and remove instances, and where new ones are registered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleConfig {
    /// Run the whole cycle on real readings, print and store the decision, but create and terminate
    /// nothing and leave the balancer alone (the seed's simulation mode).
    #[serde(default)]
    pub dry_run: bool,
    /// Longest time one provider or balancer call may take, its retries included.
    #[serde(default = "default_call_timeout", with = "crate::core::duration")]
    pub call_timeout: Duration,
    /// `[scale.balancer]`: where running instances are registered (none: no balancer).
    pub balancer: Option<BalancerConfig>,
    /// `[[scale.signal]]`: extra signals (Prometheus queries) with their own high/low; add if any says add,
    /// remove only if all allow it.
    #[serde(default)]
    pub signal: Vec<SignalConfig>,
    /// The policy: `high`, `low`, `min`, `max`, `max_step`, `interval`, `window`, `boot_grace`, `predictive`,
    /// `overload_budget`, `saturated`, `surge`, `memory`, `settle`, `history` (see [`PolicyConfig`]).
    #[serde(flatten)]
    pub policy: PolicyConfig,
}

/// The keys of `[scale]` that are not the policy's (the rest are [`PolicyConfig`]'s, flattened).
pub const OWN_KEYS: &[&str] = &["dry_run", "call_timeout", "balancer", "signal"];

fn default_call_timeout() -> Duration {
    Duration::from_secs(120)
}

impl Default for ScaleConfig {
    fn default() -> Self {
        ScaleConfig {
            dry_run: false,
            call_timeout: default_call_timeout(),
            balancer: None,
            signal: Vec::new(),
            policy: PolicyConfig::default(),
        }
    }
}

impl ScaleConfig {
    /// Pure checks, with key paths.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        out.extend(self.policy.validate("scale"));
        if self.call_timeout.is_zero() {
            out.push(Invalid::new("scale.call_timeout", "must be longer than 0s"));
        }
        if let Some(b) = &self.balancer {
            out.extend(b.validate("scale.balancer"));
        }
        for (i, s) in self.signal.iter().enumerate() {
            out.extend(s.validate(i));
        }
        out
    }
}

/// The `[scale]` policy settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Add instances when the median load (percent) is above this.
    pub high: f64,
    /// Remove one only when the predicted load after removal, median·n/(n−1), is below this (percent).
    pub low: f64,
    /// Never fewer instances than this (scales up from zero too).
    pub min: u32,
    /// Never more instances than this.
    pub max: u32,
    /// At most this many instances added in one decision.
    pub max_step: u32,
    /// How often the policy runs.
    #[serde(with = "crate::core::duration")]
    pub interval: Duration,
    /// Each instance's load is averaged over this window.
    #[serde(with = "crate::core::duration")]
    pub window: Duration,
    /// An instance without data younger than this is booting (capacity on the way); older, its data is missing.
    #[serde(with = "crate::core::duration")]
    pub boot_grace: Duration,
    /// Keep headroom for the demand rises learned from the load's history (off: the plain seed rules).
    pub predictive: bool,
    /// Share of the time (percent) the fleet may be short of demand; sets the quantile of learned rises to cover.
    pub overload_budget: f64,
    /// A median load at or above this (percent) means saturated: the real demand is unknown.
    pub saturated: f64,
    /// On saturation, grow the serving fleet by this factor in one step.
    pub surge: f64,
    /// How long learned rises are remembered.
    #[serde(with = "crate::core::duration")]
    pub memory: Duration,
    /// The forecast starts from the highest demand seen within this span (spikes come in clusters).
    #[serde(with = "crate::core::duration")]
    pub settle: Duration,
    /// At start (and when this replica becomes the leader) the fleet's metric history over this span is read from
    /// the provider and learned before the first decision; `0s` learns only as it runs.
    #[serde(with = "crate::core::duration")]
    pub history: Duration,
}

/// Default `high`.
pub const DEFAULT_HIGH: f64 = 90.0;
/// Default `low`.
pub const DEFAULT_LOW: f64 = 80.0;
/// Default `min`.
pub const DEFAULT_MIN: u32 = 1;
/// Default `max`.
pub const DEFAULT_MAX: u32 = 20;
/// Default `max_step`.
pub const DEFAULT_MAX_STEP: u32 = 10;
/// Default `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Default `window`.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Default `boot_grace`.
pub const DEFAULT_BOOT_GRACE: Duration = Duration::from_secs(300);
/// Default `overload_budget` (percent of the time): half of a 0.1 % SLO, because a learned rise is one window
/// average (peaks within it are hidden) and one missed rise overloads the fleet until new capacity serves.
pub const DEFAULT_OVERLOAD_BUDGET: f64 = 0.05;
/// Default `saturated` (percent).
pub const DEFAULT_SATURATED: f64 = 99.0;
/// Default `surge` factor.
pub const DEFAULT_SURGE: f64 = 4.0;
/// Default `memory`: two weeks, to see every day of the week twice (and all of the default `history`).
pub const DEFAULT_MEMORY: Duration = Duration::from_secs(14 * 86_400);
/// Default `history`: two weeks, well within the 15 days CloudWatch keeps 1-minute data.
pub const DEFAULT_HISTORY: Duration = Duration::from_secs(14 * 86_400);

/// Default `settle`.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(300);

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            high: DEFAULT_HIGH,
            low: DEFAULT_LOW,
            min: DEFAULT_MIN,
            max: DEFAULT_MAX,
            max_step: DEFAULT_MAX_STEP,
            interval: DEFAULT_INTERVAL,
            window: DEFAULT_WINDOW,
            boot_grace: DEFAULT_BOOT_GRACE,
            predictive: true,
            overload_budget: DEFAULT_OVERLOAD_BUDGET,
            saturated: DEFAULT_SATURATED,
            surge: DEFAULT_SURGE,
            memory: DEFAULT_MEMORY,
            settle: DEFAULT_SETTLE,
            history: DEFAULT_HISTORY,
        }
    }
}

impl PolicyConfig {
    /// Every problem of the settings (pure), with key paths under `section` (`scale`).
    pub fn validate(&self, section: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |field: &str, problem: String| {
            out.push(Invalid::new(format!("{section}.{field}"), problem))
        };
        if !(0.0 < self.low && self.low < self.high && self.high <= 100.0) {
            bad(
                "low",
                format!(
                    "low ({}) must be below high ({}), both within 0..=100",
                    self.low, self.high
                ),
            );
        }
        if self.min > self.max || self.max == 0 {
            bad(
                "min",
                format!(
                    "min ({}) must not exceed max ({}), and max must be at least 1",
                    self.min, self.max
                ),
            );
        }
        if self.max_step == 0 {
            bad("max_step", "must be at least 1".into());
        }
        if self.interval.is_zero() {
            bad("interval", "must be longer than 0s".into());
        }
        if self.window.is_zero() {
            bad("window", "must be longer than 0s".into());
        }
        if !(0.0..100.0).contains(&self.overload_budget) {
            bad("overload_budget", "must be within 0..100 (percent)".into());
        }
        if self.surge.is_nan() || self.surge < 1.0 {
            bad("surge", "must be 1 or more".into());
        }
        out
    }
}

/// `[[scale.signal]]`: one extra signal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    /// Name in decisions and logs ("p99-latency").
    pub name: String,
    /// Prometheus base URL, e.g. `http://127.0.0.1:9090` (the query goes to `/api/v1/query`).
    pub prometheus: String,
    /// A PromQL query returning one number (a scalar, or a vector whose first sample is used).
    pub query: String,
    /// Add instances above this value.
    pub high: f64,
    /// Allow removing one only when value·n/(n−1) stays below this.
    pub low: f64,
    /// Bound on one query.
    #[serde(default = "default_signal_timeout", with = "crate::core::duration")]
    pub timeout: Duration,
}

fn default_signal_timeout() -> Duration {
    Duration::from_secs(5)
}

impl SignalConfig {
    /// Pure checks; `i` is the signal's index in `scale.signal`.
    pub fn validate(&self, i: usize) -> Vec<Invalid> {
        let at = |f: &str| format!("scale.signal[{i}].{f}");
        let mut out = Vec::new();
        if !(self.prometheus.starts_with("http://") || self.prometheus.starts_with("https://")) {
            out.push(Invalid::new(
                at("prometheus"),
                "must start with http:// or https://",
            ));
        }
        if self.query.trim().is_empty() {
            out.push(Invalid::new(at("query"), "must not be empty"));
        }
        if self.low >= self.high || !self.low.is_finite() || !self.high.is_finite() {
            out.push(Invalid::new(at("low"), "must be below high"));
        }
        out
    }
}
