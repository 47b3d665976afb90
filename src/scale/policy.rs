//! tend's scaling policy: a pure, deterministic function of what was observed, the config and the time.
//!
//! The core is the seed's rule: add when the median load is above `high`; remove one instance only when the
//! *predicted* load after the removal, `median · n / (n − 1)`, stays below `low`, so the fleet runs at 80–90 %
//! without ping-pong. Around it:
//!
//! - **Booting is capacity on the way.** An instance without data that is pending or younger than `boot_grace`
//!   counts towards the fleet size (so one shortfall gets one action) but not towards the median (never as 0 %).
//!   A running instance past `boot_grace` without data is *missing*; when more than half the fleet is missing the
//!   policy holds and says so.
//! - **Proportional scale-up.** Enough instances are added at once to bring the median into the band
//!   (`ceil(median · n / high)`), capped by `max` and `max_step`, at least one.
//! - **Forecast headroom** (`predictive`, on by default). The policy keeps capacity for the demand's recent level
//!   (the highest demand within `settle`: spikes come in clusters) plus the rise demand may take before new
//!   capacity could serve: a high quantile of the rises it has *seen* over that horizon at similar levels, with
//!   the tail extrapolated while few have been seen, and a rise under way counted at once (see
//!   [`crate::scale::forecast`]). Before it has learned enough (from the provider's history at start, or as it
//!   runs) it invents nothing: the policy is the configured `high`/`low` rule, and every reason says so
//!   ("no history yet: the configured high/low rule"). It adds when the forecast exceeds the fleet, and removes
//!   only when the forecast also fits the smaller fleet under [`FORECAST_FIT`] (or `high`, if higher).
//! - **Honest estimates.** Demand is the median load × the serving instances. For one `window` after instances
//!   join, the others' averages still show the smaller fleet's load, which times today's size overstates demand;
//!   the memory then takes the estimate from the instances that just joined, so it learns no false rise.
//! - **Saturation.** A median at or above `saturated` means the true demand is unknown (CPU cannot show more than
//!   100 %): the fleet is multiplied by `surge` in one step, so a sudden multiple of the demand is met within one
//!   boot instead of one boot per doubling.
//! - **Which one goes:** the most recently launched instance that reports data (ties: the greatest id). With
//!   per-second billing the newest has the least sunk warm-up; the long-lived ones stay warm.
//!
//! Use: every interval call [`Policy::observe`] (it updates the memory), then [`Policy::decide`] (pure).

use std::time::SystemTime;

use super::config::PolicyConfig;
use super::forecast::{History, Snapshot};
use crate::core::stats::median;

/// Lifecycle of an instance as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Created, not running yet.
    Pending,
    /// Running (it may still be booting its service).
    Running,
}

/// One instance as observed this interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Provider id.
    pub id: String,
    /// When it was created.
    pub launched_at: SystemTime,
    /// Provider state.
    pub state: InstanceState,
    /// CPU load in percent averaged over the window; `None` = no data yet (never read as 0 %).
    pub load: Option<f64>,
}

/// The fleet as observed this interval (instances with tend's prefix).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    /// Every instance, in any order.
    pub instances: Vec<Observed>,
}

/// What the policy wants done this interval, with the reason in words.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Do nothing.
    Hold {
        /// Why.
        reason: String,
    },
    /// Create `count` instances.
    Add {
        /// How many to create.
        count: u32,
        /// Why.
        reason: String,
    },
    /// Terminate this instance.
    Remove {
        /// Which one.
        id: String,
        /// Why.
        reason: String,
    },
}

impl Decision {
    /// The reason, whatever the decision.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Hold { reason }
            | Decision::Add { reason, .. }
            | Decision::Remove { reason, .. } => reason,
        }
    }
}

/// A removal must leave the forecast (which already holds the learned headroom) at most this load (percent) on
/// the smaller fleet, or `high` if that is higher: enough hysteresis against churn without paying `high`'s margin
/// on top of the headroom.
pub const FORECAST_FIT: f64 = 95.0;

/// What the policy sees in a fleet: the numbers behind a decision (for `tend scale --once` and the status page).
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// All instances, booting ones included.
    pub total: usize,
    /// Instances with load data.
    pub with_data: usize,
    /// Instances without data within `boot_grace` (capacity on the way).
    pub booting: usize,
    /// Running instances past `boot_grace` without data.
    pub missing: usize,
    /// Median load (percent) over instances with data.
    pub median: Option<f64>,
    /// Estimated demand in servers: median × serving instances / 100.
    pub demand: Option<f64>,
    /// The seed's predicted load after removing one: median·n/(n−1) (n = serving instances).
    pub predicted_after_removal: Option<f64>,
    /// Demand plus the learned headroom: what the fleet must be able to carry over the horizon (servers).
    pub forecast: Option<f64>,
    /// What the decision rests on, in words: "no history yet: the configured high/low rule", or "learned from
    /// 13.9 days of history: 99.95th-percentile rise over 6 min = +18.0%".
    pub basis: String,
}

/// tend's policy with its memory of past observations.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    history: History,
}

fn is_booting(o: &Observed, grace: std::time::Duration, now: SystemTime) -> bool {
    o.load.is_none()
        && (o.state == InstanceState::Pending
            || now.duration_since(o.launched_at).unwrap_or_default() < grace)
}

/// The basis of a policy that does not forecast.
pub const RULE_ONLY: &str = "the configured high/low rule (predictive = false)";
/// The basis before enough has been learned.
pub const NO_HISTORY: &str = "no history yet: the configured high/low rule";

/// A span of history for people: "13.9 days", "2.0 hours", "45 minutes".
pub fn span_text(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 86_400.0 {
        format!("{:.1} days", secs / 86_400.0)
    } else if secs >= 3600.0 {
        format!("{:.1} hours", secs / 3600.0)
    } else {
        format!("{:.0} minutes", secs / 60.0)
    }
}

/// "99.95th" for 0.9995.
fn percentile_text(q: f64) -> String {
    let p = (q * 100.0 * 100.0).round() / 100.0;
    format!("{p}th")
}

/// "6 min", "5.5 min".
fn minutes_text(d: std::time::Duration) -> String {
    let m = (d.as_secs_f64() / 6.0).round() / 10.0;
    format!("{m} min")
}

impl Policy {
    /// A policy with an empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy that goes on from a memory kept across a restart.
    pub fn restore(snapshot: &Snapshot) -> Self {
        Policy {
            history: History::restore(snapshot),
        }
    }

    /// Learns from the fleet's past demand before the first decision (see [`History::learn_past`]).
    pub fn learn_past(&mut self, past: &super::past::Past, config: &PolicyConfig) {
        self.history
            .learn_past(&past.demand, past.resolution, config);
    }

    /// What it has learned so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Updates the memory with this interval's observation. Call once per interval, before [`Policy::decide`].
    pub fn observe(&mut self, fleet: &Fleet, config: &PolicyConfig, now: SystemTime) {
        let instances = fleet
            .instances
            .iter()
            .map(|o| (o.id.as_str(), o.launched_at, o.load.is_some()));
        self.history.note_instances(now, instances, config);
        let a = self.assess_basic(fleet, config, now);
        let demand = a.demand.filter(|_| a.missing * 2 <= a.total);
        self.history.record(now, demand, config);
    }

    fn assess_basic(&self, fleet: &Fleet, config: &PolicyConfig, now: SystemTime) -> Assessment {
        let loads: Vec<f64> = fleet.instances.iter().filter_map(|o| o.load).collect();
        let grace = config.boot_grace + self.history.extra_lag();
        let booting = fleet
            .instances
            .iter()
            .filter(|o| is_booting(o, grace, now))
            .count();
        let total = fleet.instances.len();
        let with_data = loads.len();
        let missing = total - with_data - booting;
        let median_load = median(loads.iter().copied().map(Some));
        let serving = (with_data + missing) as f64;
        // For one window after instances join, the others' (lagged) averages still show the smaller fleet's load:
        // times today's size, they overstate demand (and would teach false rises). The instances that just joined
        // have averaged over the present fleet only, so they alone give the load per serving instance then.
        let fresh = fleet
            .instances
            .iter()
            .filter(|o| self.history.just_joined(&o.id))
            .map(|o| o.load);
        let per_instance = median(fresh).or(median_load);
        Assessment {
            total,
            with_data,
            booting,
            missing,
            median: median_load,
            demand: per_instance.map(|m| m * serving / 100.0),
            predicted_after_removal: median_load
                .filter(|_| serving >= 2.0)
                .map(|m| m * serving / (serving - 1.0)),
            forecast: None,
            basis: if config.predictive {
                NO_HISTORY.into()
            } else {
                RULE_ONLY.into()
            },
        }
    }

    /// The numbers the decision is based on.
    pub fn assess(&self, fleet: &Fleet, config: &PolicyConfig, now: SystemTime) -> Assessment {
        let mut a = self.assess_basic(fleet, config, now);
        if let Some(d) = a.demand {
            let level = self.history.level(now, config.settle).unwrap_or(d).max(d);
            let (rise, basis) = self.basis_at(level, config, now);
            a.forecast = rise.map(|r| level + r);
            a.basis = basis;
        }
        a
    }

    /// The headroom (servers) to keep at demand `level` and what it rests on, in words: "no history yet: the
    /// configured high/low rule", or "learned from 13.9 days of history: 99.95th-percentile rise over 6 min =
    /// +18.0%" (`None`, and the rule, until enough is learned or when `predictive` is off).
    pub fn basis_at(
        &self,
        level: f64,
        config: &PolicyConfig,
        now: SystemTime,
    ) -> (Option<f64>, String) {
        if !config.predictive {
            return (None, RULE_ONLY.into());
        }
        let quantile = 1.0 - config.overload_budget / 100.0;
        let Some(rise) = self.history.headroom(level, quantile) else {
            return (None, NO_HISTORY.into());
        };
        let pct = if level > 0.0 {
            format!("+{:.1}%", 100.0 * rise / level)
        } else {
            format!("+{rise:.2} servers")
        };
        let basis = format!(
            "learned from {} of history: {}-percentile rise over {} = {pct}",
            span_text(self.history.span(now)),
            percentile_text(quantile),
            minutes_text(self.history.horizon(config.boot_grace, config.interval))
        );
        (Some(rise), basis)
    }

    /// The decision for this interval: pure in (fleet, config, now, memory).
    pub fn decide(&self, fleet: &Fleet, config: &PolicyConfig, now: SystemTime) -> Decision {
        let a = self.assess(fleet, config, now);
        let (n, min, max) = (a.total as u64, u64::from(config.min), u64::from(config.max));
        if n < min {
            let count = (min - n) as u32;
            return Decision::Add {
                count,
                reason: format!("{n} instance(s), below min {min}: adding {count}"),
            };
        }
        if n > max
            && let Some(id) = removal_candidate(fleet)
        {
            return Decision::Remove {
                id,
                reason: format!("{n} instance(s), above max {max}"),
            };
        }
        if a.missing * 2 > a.total {
            return hold(format!(
                "no load data for {} of {} instance(s) past boot grace: holding until it is back",
                a.missing, a.total
            ));
        }
        let Some(median) = a.median else {
            return hold(format!(
                "waiting for {} booting instance(s) to report load",
                a.booting
            ));
        };
        let serving = (a.with_data + a.missing) as f64;
        let demand = a.demand.unwrap_or(0.0);
        let mut need = 0u64;
        let mut why = String::new();
        if median > config.high {
            need = ceil(median * serving / config.high);
            why = format!("median {median:.1}% above high {}%", config.high);
        }
        if let Some(forecast) = a.forecast {
            let f = ceil(forecast - 1e-9);
            if f > need {
                need = f;
                why = format!(
                    "demand {demand:.2}: the forecast {forecast:.2} servers needs {f} instance(s)"
                );
            }
        }
        // Saturated: the real demand is unknown, so aim at `surge` × the serving instances. Instances still
        // booting count in `n` below, so a surge capped by `max_step` only completes itself on the next cycle;
        // it never adds twice for the same shortfall.
        if median >= config.saturated {
            let s = ceil(serving * config.surge);
            if s > need {
                need = s;
                why = format!(
                    "saturated at median {median:.1}%: real demand unknown, ×{}",
                    config.surge
                );
            }
        }
        if need > n {
            if n >= max {
                return hold(format!("{why}; already at max {max}"));
            }
            let count = (need.min(max) - n).min(u64::from(config.max_step)) as u32;
            return Decision::Add {
                count,
                reason: format!("{why}: {n} → {} ({})", n + u64::from(count), a.basis),
            };
        }
        with_basis(
            self.decide_removal(fleet, config, &a, median, serving),
            &a.basis,
        )
    }

    fn decide_removal(
        &self,
        fleet: &Fleet,
        config: &PolicyConfig,
        a: &Assessment,
        median: f64,
        serving: f64,
    ) -> Decision {
        let n = a.total as u64;
        let state = format!("median {median:.1}% on {n}");
        if a.booting > 0 {
            return hold(format!("{state}; {} instance(s) booting", a.booting));
        }
        if n <= u64::from(config.min) {
            return hold(format!("{state}; at min {}", config.min));
        }
        let Some(predicted) = a.predicted_after_removal else {
            return hold(format!(
                "{state}; a single serving instance cannot be removed"
            ));
        };
        if predicted >= config.low {
            return hold(format!(
                "{state}; predicted {predicted:.1}% after removal, not below low {}%",
                config.low
            ));
        }
        if let Some(forecast) = a.forecast {
            let after = forecast * 100.0 / (serving - 1.0);
            if after >= config.high.max(FORECAST_FIT) {
                return hold(format!(
                    "{state}; predicted {predicted:.1}% but the forecast {forecast:.2} servers would load {} at {after:.1}%",
                    n - 1
                ));
            }
        }
        match removal_candidate(fleet) {
            Some(id) => Decision::Remove {
                id,
                reason: format!(
                    "{state}; predicted {predicted:.1}% after removal, below low {}%",
                    config.low
                ),
            },
            None => hold(format!("{state}; no instance with data to remove")),
        }
    }
}

fn hold(reason: String) -> Decision {
    Decision::Hold { reason }
}

/// The decision with what it rests on appended to its reason.
fn with_basis(d: Decision, basis: &str) -> Decision {
    match d {
        Decision::Hold { reason } => Decision::Hold {
            reason: format!("{reason} ({basis})"),
        },
        Decision::Add { count, reason } => Decision::Add {
            count,
            reason: format!("{reason} ({basis})"),
        },
        Decision::Remove { id, reason } => Decision::Remove {
            id,
            reason: format!("{reason} ({basis})"),
        },
    }
}

fn ceil(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.ceil() as u64
    } else {
        0
    }
}

/// The instance to remove: the most recently launched one with data; ties broken by the greatest id.
pub fn removal_candidate(fleet: &Fleet) -> Option<String> {
    fleet
        .instances
        .iter()
        .filter(|o| o.load.is_some())
        .max_by(|a, b| {
            a.launched_at
                .cmp(&b.launched_at)
                .then_with(|| a.id.cmp(&b.id))
        })
        .map(|o| o.id.clone())
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
