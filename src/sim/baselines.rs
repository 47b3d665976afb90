//! The policies the simulator compares, each implementing its documented algorithm (sources cited per policy).
//!
//! Every policy sees, at its own interval, each live instance's CPU averaged over its own window and delayed by
//! the metric lag (`None` while it has no data), and answers with an [`Act`].

use std::collections::VecDeque;

use crate::cloud::sim::fleet::SimFleet;
use crate::scale::config::PolicyConfig;
use crate::scale::policy::{Decision, Fleet, InstanceState, Observed, Policy};

/// What a policy wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// Nothing.
    Hold,
    /// Create this many instances.
    Add(u32),
    /// Terminate these instances (positions in [`SimFleet::live`]).
    Remove(Vec<usize>),
}

/// A policy the simulator can run.
pub trait SimPolicy {
    /// Seconds between two decisions (default: one CloudWatch period, 60 s).
    fn interval(&self) -> f64 {
        60.0
    }
    /// Seconds each instance's CPU is averaged over (default: one CloudWatch period, 60 s).
    fn window(&self) -> f64 {
        60.0
    }
    /// One decision; `loads[i]` is the observed CPU of `fleet.live()[i]`, `now` seconds since the start.
    fn decide(&mut self, fleet: &SimFleet, loads: &[Option<f64>], now: f64) -> Act;
}

/// Fleet bounds the scenario imposes on every policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Fewest instances.
    pub min: u32,
    /// Most instances.
    pub max: u32,
}

impl Bounds {
    /// Every baseline's first rule: below `min` instances, add up to `min`.
    pub fn fill(&self, n: usize) -> Option<Act> {
        (n < self.min as usize).then(|| Act::Add(self.min - n as u32))
    }
}

fn mean(loads: &[Option<f64>]) -> Option<f64> {
    let v: Vec<f64> = loads.iter().flatten().copied().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The `k` newest instances, those with data first (the removal rule shared by the baselines).
fn newest(fleet: &SimFleet, loads: &[Option<f64>], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..fleet.live().len()).collect();
    idx.sort_by(|&a, &b| {
        (loads[b].is_some(), fleet.live()[b].created)
            .partial_cmp(&(loads[a].is_some(), fleet.live()[a].created))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    idx.truncate(k);
    idx
}

fn clamp_target(n: usize, desired: i64, b: Bounds) -> i64 {
    desired.clamp(
        i64::from(b.min),
        i64::from(b.max).max(n as i64).min(i64::from(b.max)),
    )
}

fn act_to(fleet: &SimFleet, loads: &[Option<f64>], n: usize, desired: i64) -> Act {
    let n = n as i64;
    if desired > n {
        Act::Add((desired - n) as u32)
    } else if desired < n {
        Act::Remove(newest(fleet, loads, (n - desired) as usize))
    } else {
        Act::Hold
    }
}

/// The seed as published: every minute, median CPU over instances reporting data; above `high` add one; else
/// when median·n/(n−1) < `low` remove one. Booting instances are invisible to it (the published behaviour).
/// Source: the seed orchestrator (issue 6), as published.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Add above this median (percent).
    pub high: f64,
    /// Remove when the predicted load after removal is below this (percent).
    pub low: f64,
    /// Fleet bounds.
    pub bounds: Bounds,
}

impl SimPolicy for Seed {
    fn decide(&mut self, fleet: &SimFleet, loads: &[Option<f64>], _now: f64) -> Act {
        let n_total = loads.len();
        if let Some(fill) = self.bounds.fill(n_total) {
            return fill;
        }
        let Some(m) = crate::core::stats::median(loads.iter().copied()) else {
            return Act::Hold;
        };
        let n = loads.iter().flatten().count() as f64;
        if m > self.high && n_total < self.bounds.max as usize {
            Act::Add(1)
        } else if n >= 2.0 && m * n / (n - 1.0) < self.low && n_total > self.bounds.min as usize {
            Act::Remove(newest(fleet, loads, 1))
        } else {
            Act::Hold
        }
    }
}

/// AWS EC2 Auto Scaling simple scaling: a CloudWatch alarm on average CPU (1-minute periods) above `high` adds
/// one instance, below `low` removes one; after any activity a 300 s cooldown blocks the next.
/// Source: AWS docs, "Step and simple scaling policies for Amazon EC2 Auto Scaling" and "Scaling cooldowns".
#[derive(Debug, Clone)]
pub struct AwsSimple {
    /// Add-alarm threshold (percent).
    pub high: f64,
    /// Remove-alarm threshold (percent).
    pub low: f64,
    /// Fleet bounds.
    pub bounds: Bounds,
    /// End of the current cooldown (s).
    pub cooldown_until: f64,
}

impl AwsSimple {
    /// Thresholds and bounds, no cooldown running.
    pub fn new(high: f64, low: f64, bounds: Bounds) -> Self {
        AwsSimple {
            high,
            low,
            bounds,
            cooldown_until: f64::NEG_INFINITY,
        }
    }
}

impl SimPolicy for AwsSimple {
    fn decide(&mut self, fleet: &SimFleet, loads: &[Option<f64>], now: f64) -> Act {
        let n = loads.len();
        if let Some(fill) = self.bounds.fill(n) {
            return fill;
        }
        if now < self.cooldown_until {
            return Act::Hold;
        }
        let Some(avg) = mean(loads) else {
            return Act::Hold;
        };
        let act = if avg > self.high && n < self.bounds.max as usize {
            Act::Add(1)
        } else if avg < self.low && n > self.bounds.min as usize {
            Act::Remove(newest(fleet, loads, 1))
        } else {
            Act::Hold
        };
        if act != Act::Hold {
            self.cooldown_until = now + 300.0;
        }
        act
    }
}

/// AWS target tracking on average CPU: the scale-out alarm fires after 3 consecutive 1-minute periods above
/// `target` and sets capacity to ceil(n·metric/target) (instances in their 300 s warm-up count as capacity but not
/// in the metric); the scale-in alarm fires after 15 consecutive periods below 90 % of target and removes the
/// whole number of instances that keeps the metric at or under target (never scales in while instances warm
/// up); after a scale-in the alarm must see 15 fresh periods.
/// Source: AWS docs, "Target tracking scaling policies for Amazon EC2 Auto Scaling" (alarm shapes as created by
/// AWS: 3 of 3 datapoints high, 15 of 15 low at 90 % of target) and "Set the default instance warmup".
#[derive(Debug, Clone)]
pub struct AwsTargetTracking {
    /// Target average CPU (percent).
    pub target: f64,
    /// Fleet bounds.
    pub bounds: Bounds,
    /// Consecutive periods above target.
    pub above: u32,
    /// Consecutive periods below 90 % of target.
    pub below: u32,
}

/// Instance warm-up of target tracking (s).
pub const AWS_WARMUP: f64 = 300.0;

impl AwsTargetTracking {
    /// A target and bounds, no alarm periods counted yet.
    pub fn new(target: f64, bounds: Bounds) -> Self {
        AwsTargetTracking {
            target,
            bounds,
            above: 0,
            below: 0,
        }
    }
}

impl SimPolicy for AwsTargetTracking {
    fn decide(&mut self, fleet: &SimFleet, loads: &[Option<f64>], now: f64) -> Act {
        let n = loads.len();
        if let Some(fill) = self.bounds.fill(n) {
            return fill;
        }
        let warm: Vec<Option<f64>> = loads
            .iter()
            .zip(fleet.live())
            .map(|(l, i)| {
                if now - i.created >= AWS_WARMUP {
                    *l
                } else {
                    None
                }
            })
            .collect();
        let warming = fleet.live().iter().any(|i| now - i.created < AWS_WARMUP);
        let Some(metric) = mean(&warm) else {
            return Act::Hold;
        };
        let counted = warm.iter().flatten().count() as f64;
        self.above = if metric > self.target {
            self.above + 1
        } else {
            0
        };
        self.below = if metric < 0.9 * self.target {
            self.below + 1
        } else {
            0
        };
        if self.above >= 3 {
            let desired =
                (counted * metric / self.target).ceil() as i64 + (n as i64 - counted as i64);
            let desired = clamp_target(n, desired, self.bounds);
            if desired > n as i64 {
                return act_to(fleet, loads, n, desired);
            }
        }
        if self.below >= 15 && !warming {
            self.below = 0;
            let desired = clamp_target(
                n,
                (counted * metric / self.target).ceil() as i64,
                self.bounds,
            );
            if desired < n as i64 {
                return act_to(fleet, loads, n, desired);
            }
        }
        Act::Hold
    }
}

/// Kubernetes Horizontal Pod Autoscaler: every 15 s, desired = ceil(ratio · pods) with ratio = avg/target over
/// pods with metrics; pods without metrics count as 0 % when scaling up and 100 % of target when scaling down
/// (and the action is dropped if that flips the direction); no change within the 0.1 tolerance; scale-down
/// stabilization takes the highest recommendation of the last 300 s; scale-up is limited to
/// max(100 %, 4 pods) per 15 s.
/// Source: kubernetes.io, "Horizontal Pod Autoscaling" (algorithm details, default behavior).
#[derive(Debug, Clone)]
pub struct K8sHpa {
    /// Target average CPU utilisation (percent).
    pub target: f64,
    /// Fleet bounds.
    pub bounds: Bounds,
    /// Past recommendations (time, replicas) within the stabilization window.
    pub recommendations: VecDeque<(f64, i64)>,
}

impl K8sHpa {
    /// A target and bounds, no recommendation yet.
    pub fn new(target: f64, bounds: Bounds) -> Self {
        K8sHpa {
            target,
            bounds,
            recommendations: VecDeque::new(),
        }
    }
}

impl SimPolicy for K8sHpa {
    fn interval(&self) -> f64 {
        15.0
    }
    fn window(&self) -> f64 {
        15.0
    }
    fn decide(&mut self, fleet: &SimFleet, loads: &[Option<f64>], now: f64) -> Act {
        let n = loads.len() as i64;
        let with: Vec<f64> = loads.iter().flatten().copied().collect();
        let mut desired = n;
        if !with.is_empty() {
            let missing = (n as usize - with.len()) as f64;
            let sum: f64 = with.iter().sum();
            let ratio = sum / with.len() as f64 / self.target;
            if (ratio - 1.0).abs() > 0.1 {
                // Missing pods: 0 % on scale up, 100 % of target on scale down.
                let fill = if ratio > 1.0 { 0.0 } else { self.target };
                let adjusted = (sum + missing * fill) / (with.len() as f64 + missing) / self.target;
                let flipped = (ratio > 1.0) != (adjusted > 1.0);
                if !flipped && (adjusted - 1.0).abs() > 0.1 {
                    desired = (adjusted * (with.len() as f64 + missing)).ceil() as i64;
                }
            }
        }
        self.recommendations.push_back((now, desired));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now - t > 300.0)
        {
            self.recommendations.pop_front();
        }
        if desired < n {
            desired = self
                .recommendations
                .iter()
                .map(|r| r.1)
                .max()
                .unwrap_or(desired)
                .min(n);
        }
        let desired = desired.min(n + n.max(4));
        act_to(
            fleet,
            loads,
            n as usize,
            clamp_target(n as usize, desired, self.bounds),
        )
    }
}

/// tend's own policy, the very code `tend scale` runs, at the given config (the defaults unless replayed).
#[derive(Debug, Clone)]
pub struct Tend {
    /// Its config.
    pub config: PolicyConfig,
    /// Its memory.
    pub policy: Policy,
}

/// The sim's wall clock origin: any fixed instant works; this one keeps negative offsets valid.
pub fn sim_time(secs: f64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(1_000_000_000)
        + std::time::Duration::from_secs_f64(secs.max(0.0))
        - std::time::Duration::from_secs_f64((-secs).max(0.0))
}

impl SimPolicy for Tend {
    fn interval(&self) -> f64 {
        self.config.interval.as_secs_f64()
    }
    fn window(&self) -> f64 {
        self.config.window.as_secs_f64()
    }
    fn decide(&mut self, fleet: &SimFleet, loads: &[Option<f64>], now: f64) -> Act {
        let observed = Fleet {
            instances: fleet
                .live()
                .iter()
                .zip(loads)
                .map(|(i, l)| Observed {
                    id: i.id.clone(),
                    launched_at: sim_time(i.created),
                    state: if i.ready_at <= now {
                        InstanceState::Running
                    } else {
                        InstanceState::Pending
                    },
                    load: *l,
                })
                .collect(),
        };
        let t = sim_time(now);
        self.policy.observe(&observed, &self.config, t);
        match self.policy.decide(&observed, &self.config, t) {
            Decision::Hold { .. } => Act::Hold,
            Decision::Add { count, .. } => Act::Add(count),
            Decision::Remove { id, .. } => match fleet.live().iter().position(|i| i.id == id) {
                Some(pos) => Act::Remove(vec![pos]),
                None => Act::Hold,
            },
        }
    }
}
