//! The simulation loop: one policy against one demand series (see the model in the `sim` module docs).

use super::baselines::{Act, Bounds, SimPolicy};
use crate::cloud::sim::fleet::SimFleet;

/// The scenario every policy faces.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Demand in servers, one value per trace row.
    pub demand: Vec<f64>,
    /// Seconds between rows.
    pub step: f64,
    /// Seconds from creation until an instance serves.
    pub boot: f64,
    /// Seconds by which every metric is delayed.
    pub lag: f64,
    /// Allowed overloaded minutes, percent of the trace's minutes.
    pub slo_pct: f64,
    /// Fleet bounds for every policy.
    pub bounds: Bounds,
}

/// The longest simulation tick (s): HPA's sync period.
pub const MAX_TICK: f64 = 15.0;

impl Scenario {
    /// Ticks per trace row: the tick is the step divided evenly to at most [`MAX_TICK`].
    pub fn ticks_per_row(&self) -> usize {
        (self.step / MAX_TICK).ceil().max(1.0) as usize
    }
    /// The tick (s).
    pub fn tick(&self) -> f64 {
        self.step / self.ticks_per_row() as f64
    }
    /// Length of the trace in minutes.
    pub fn minutes(&self) -> f64 {
        self.demand.len() as f64 * self.step / 60.0
    }
    /// The overloaded minutes the SLO allows.
    pub fn slo_minutes(&self) -> f64 {
        self.minutes() * self.slo_pct / 100.0
    }
}

/// What one policy did on the scenario (the report fields, before naming).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Outcome {
    /// Billed server-hours.
    pub server_hours: f64,
    /// Minutes (wall-clock minutes of the trace) in which demand exceeded ready capacity at some tick.
    pub overloaded_minutes: u64,
    /// Largest share of demand not served at any tick (percent).
    pub max_overload_pct: f64,
    /// Served demand over billed capacity (percent).
    pub mean_utilization: f64,
    /// Scaling actions taken (an add of several instances is one action).
    pub actions: u64,
    /// SPEC under-provisioning accuracy θ_U (percent).
    pub under_provisioning_accuracy: f64,
    /// SPEC over-provisioning accuracy θ_O (percent).
    pub over_provisioning_accuracy: f64,
    /// SPEC under-provisioning timeshare τ_U (percent of time).
    pub under_provisioning_timeshare: f64,
    /// SPEC over-provisioning timeshare τ_O (percent of time).
    pub over_provisioning_timeshare: f64,
    /// Ready capacity at the end of each row (for the chart; not in JSON).
    #[serde(skip)]
    pub capacity: Vec<f32>,
}

/// SPEC accumulators, per tick.
#[derive(Default)]
struct Spec {
    under_acc: f64,
    over_acc: f64,
    under_time: f64,
    over_time: f64,
}

impl Spec {
    fn add(&mut self, demand: f64, supply: f64) {
        let need = (demand - 1e-9).ceil().max(0.0);
        let base = need.max(1.0);
        if supply < need {
            self.under_acc += (need - supply) / base;
            self.under_time += 1.0;
        } else if supply > need {
            self.over_acc += (supply - need) / base;
            self.over_time += 1.0;
        }
    }
    fn write(&self, ticks: f64, o: &mut Outcome) {
        o.under_provisioning_accuracy = 100.0 * self.under_acc / ticks;
        o.over_provisioning_accuracy = 100.0 * self.over_acc / ticks;
        o.under_provisioning_timeshare = 100.0 * self.under_time / ticks;
        o.over_provisioning_timeshare = 100.0 * self.over_time / ticks;
    }
}

/// Runs `policy` over the scenario. With `abort_over`, stops and returns `None` as soon as the overloaded minutes
/// exceed it (for the sweep's search).
pub fn simulate(
    s: &Scenario,
    policy: &mut dyn SimPolicy,
    abort_over: Option<u64>,
) -> Option<Outcome> {
    let per_row = s.ticks_per_row();
    let dt = s.tick();
    let total = s.demand.len() * per_row;
    let to_ticks = |secs: f64| (secs / dt).round() as usize;
    let lag_t = to_ticks(s.lag);
    let win_t = to_ticks(policy.window()).max(1);
    let every = to_ticks(policy.interval()).max(1);

    let mut fleet = SimFleet::new(std::time::Duration::from_secs_f64(s.boot));
    let first = s.demand.first().copied().unwrap_or(0.0);
    let initial =
        ((first - 1e-9).ceil().max(0.0) as u32).clamp(s.bounds.min, s.bounds.max.max(s.bounds.min));
    for _ in 0..initial {
        fleet.create(-s.boot);
    }
    let mut cum = vec![0.0f64; total + 1];
    let mut o = Outcome {
        capacity: Vec::with_capacity(s.demand.len()),
        ..Outcome::default()
    };
    let mut spec = Spec::default();
    let mut served = 0.0;
    let mut last_minute = u64::MAX;
    let mut loads: Vec<Option<f64>> = Vec::new();
    for i in 0..total {
        let now = i as f64 * dt;
        let demand = s.demand[i / per_row];
        if i % every == 0 {
            let hi = i.saturating_sub(lag_t);
            let lo = i.saturating_sub(lag_t + win_t);
            loads.clear();
            loads.extend(fleet.live().iter().map(|inst| {
                let ready = (inst.ready_at / dt - 1e-9).ceil().max(0.0) as usize;
                let from = lo.max(ready);
                (from < hi).then(|| (cum[hi] - cum[from]) / (hi - from) as f64)
            }));
            match policy.decide(&fleet, &loads, now) {
                Act::Hold => {}
                Act::Add(count) => {
                    o.actions += 1;
                    for _ in 0..count {
                        fleet.create(now);
                    }
                }
                Act::Remove(mut positions) => {
                    o.actions += 1;
                    positions.sort_unstable();
                    positions.dedup();
                    for pos in positions.into_iter().rev() {
                        if pos < fleet.live().len() {
                            fleet.terminate_at(pos, now);
                        }
                    }
                }
            }
        }
        let ready = fleet.ready(now) as f64;
        let cpu = if ready > 0.0 {
            (demand / ready * 100.0).min(100.0)
        } else {
            0.0
        };
        cum[i + 1] = cum[i] + cpu;
        served += demand.min(ready) * dt;
        spec.add(demand, ready);
        if demand > ready + 1e-9 {
            let minute = (now / 60.0) as u64;
            if minute != last_minute {
                last_minute = minute;
                o.overloaded_minutes += 1;
                if abort_over.is_some_and(|max| o.overloaded_minutes > max) {
                    return None;
                }
            }
            o.max_overload_pct = o.max_overload_pct.max(100.0 * (demand - ready) / demand);
        }
        if i % per_row == per_row - 1 {
            o.capacity.push(ready as f32);
        }
    }
    let billed = fleet.billed_seconds(total as f64 * dt);
    o.server_hours = billed / 3600.0;
    o.mean_utilization = if billed > 0.0 {
        100.0 * served / billed
    } else {
        0.0
    };
    spec.write(total as f64, &mut o);
    Some(o)
}

/// The lower bound: Σ ceil(demand) over time, no boot delay, never overloaded.
pub fn oracle(s: &Scenario) -> Outcome {
    let mut o = Outcome::default();
    let mut spec = Spec::default();
    let (mut billed, mut served, mut prev) = (0.0, 0.0, None);
    for &d in &s.demand {
        let need = (d - 1e-9).ceil().max(f64::from(s.bounds.min));
        billed += need * s.step;
        served += d.min(need) * s.step;
        if prev.is_some_and(|p| p != need) {
            o.actions += 1;
        }
        prev = Some(need);
        spec.add(d, need);
        o.capacity.push(need as f32);
    }
    o.server_hours = billed / 3600.0;
    o.mean_utilization = if billed > 0.0 {
        100.0 * served / billed
    } else {
        0.0
    };
    spec.write(s.demand.len() as f64, &mut o);
    o
}
