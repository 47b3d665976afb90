//! `--sweep`: every setting of a baseline's thresholds on a 1-point grid (target 1..=99 %; high 2..=99 % with
//! every low below it), run on a bounded number of threads. From one sweep come the cheapest setting that meets
//! the SLO, the cheapest setting at tend's own risk (overloaded minutes at most tend's: the equal-risk
//! comparison) and the whole cost-versus-overload curve.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::engine::{Outcome, Scenario, simulate};
use super::error::SimError;
use super::spec::PolicySpec;

/// The settings `--sweep` tries for a baseline (empty for tend and the oracle): a 1-point grid of every threshold.
pub fn sweep_settings(name: &str) -> Vec<Vec<(String, String)>> {
    let one = |k: &str, v: u32| vec![(k.to_string(), v.to_string())];
    match name {
        "aws-target-tracking" | "k8s-hpa" => (1..=99).map(|t| one("target", t)).collect(),
        "seed" | "aws-simple" => (2..=99u32)
            .flat_map(|h| (1..h).map(move |l| (h, l)))
            .map(|(h, l)| {
                vec![
                    ("high".to_string(), h.to_string()),
                    ("low".to_string(), l.to_string()),
                ]
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One setting's result in a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// `KNOB=VALUE,...`.
    pub setting: String,
    /// Billed server-hours.
    pub server_hours: f64,
    /// Overloaded minutes.
    pub overloaded_minutes: u64,
}

/// A baseline's sweep: every setting whose overloaded minutes stayed within the sweep's cap (the others were
/// stopped early).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// The baseline.
    pub name: String,
    /// Overloaded minutes beyond which a run was stopped (and is not among the points).
    pub cap: u64,
    /// The settings that finished, in grid order.
    pub points: Vec<SweepPoint>,
}

impl Sweep {
    /// The cheapest setting with at most `overloaded` minutes.
    pub fn cheapest_within(&self, overloaded: u64) -> Option<&SweepPoint> {
        self.points
            .iter()
            .filter(|p| p.overloaded_minutes <= overloaded)
            .min_by(|a, b| a.server_hours.total_cmp(&b.server_hours))
    }

    /// The cost-versus-overload frontier: for each number of overloaded minutes, the cheapest setting with at
    /// most that many, where it is cheaper than every setting with fewer (sorted by overloaded minutes).
    pub fn frontier(&self) -> Vec<&SweepPoint> {
        let mut sorted: Vec<&SweepPoint> = self.points.iter().collect();
        sorted.sort_by(|a, b| {
            a.overloaded_minutes
                .cmp(&b.overloaded_minutes)
                .then(a.server_hours.total_cmp(&b.server_hours))
        });
        let mut out: Vec<&SweepPoint> = Vec::new();
        for p in sorted {
            if out.last().is_none_or(|l| p.server_hours < l.server_hours) {
                out.push(p);
            }
        }
        out
    }
}

/// Runs every setting of `name` on `s`, stopping a run once it passes `cap` overloaded minutes.
pub fn sweep(s: &Scenario, name: &str, cap: u64) -> Result<Sweep, SimError> {
    let specs: Vec<PolicySpec> = sweep_settings(name)
        .into_iter()
        .map(|knobs| PolicySpec {
            name: name.into(),
            knobs,
        })
        .collect();
    let results = run_parallel(s, &specs, Some(cap))?;
    Ok(Sweep {
        name: name.into(),
        cap,
        points: results
            .into_iter()
            .zip(&specs)
            .filter_map(|(o, spec)| {
                o.map(|o| SweepPoint {
                    setting: spec.setting(),
                    server_hours: o.server_hours,
                    overloaded_minutes: o.overloaded_minutes,
                })
            })
            .collect(),
    })
}

/// Runs one spec (the oracle is computed, not simulated).
pub fn run_one(
    s: &Scenario,
    spec: &PolicySpec,
    abort: Option<u64>,
) -> Result<Option<Outcome>, SimError> {
    match spec.build(s.bounds)? {
        Some(mut p) => Ok(simulate(s, p.as_mut(), abort)),
        None => Ok(Some(super::engine::oracle(s))),
    }
}

/// How many threads a sweep uses: the cores, at most 8; `TEND_SIM_THREADS` lowers it on a shared machine.
pub fn threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let asked = std::env::var("TEND_SIM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    asked.unwrap_or(cores).clamp(1, cores.clamp(1, 8))
}

/// Runs the specs on [`threads`] threads, each taking the next spec when done (results in the specs' order,
/// without the per-row capacity, which a sweep does not keep).
pub fn run_parallel(
    s: &Scenario,
    specs: &[PolicySpec],
    abort: Option<u64>,
) -> Result<Vec<Option<Outcome>>, SimError> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads().min(specs.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(spec) = specs.get(i) else {
                            return Ok::<_, SimError>(done);
                        };
                        let outcome = run_one(s, spec, abort)?.map(|mut o| {
                            o.capacity = Vec::new();
                            o
                        });
                        done.push((i, outcome));
                    }
                })
            })
            .collect();
        let mut all: Vec<Option<Outcome>> = vec![None; specs.len()];
        for h in handles {
            let part = h
                .join()
                .map_err(|_| SimError::Usage("a simulation thread panicked".into()))??;
            for (i, o) in part {
                all[i] = o;
            }
        }
        Ok(all)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_has_every_point() {
        let seed = sweep_settings("seed");
        assert_eq!(seed.len(), 98 * 99 / 2);
        let has = |h: &str, l: &str| seed.iter().any(|k| k[0].1 == h && k[1].1 == l);
        assert!(has("73", "44") && has("99", "98") && has("2", "1"));
        assert!(!has("50", "50"));
        let tt = sweep_settings("aws-target-tracking");
        assert_eq!(tt.len(), 99);
        assert_eq!(tt[61][0].1, "62");
        assert!(sweep_settings("tend").is_empty());
    }

    #[test]
    fn frontier_and_cheapest_within() {
        let p = |s: &str, h: f64, o: u64| SweepPoint {
            setting: s.into(),
            server_hours: h,
            overloaded_minutes: o,
        };
        let sw = Sweep {
            name: "seed".into(),
            cap: 30,
            points: vec![
                p("a", 10.0, 0),
                p("b", 12.0, 1),
                p("c", 8.0, 3),
                p("d", 9.0, 2),
                p("e", 7.0, 9),
            ],
        };
        let f: Vec<&str> = sw.frontier().iter().map(|x| x.setting.as_str()).collect();
        assert_eq!(f, ["a", "d", "c", "e"]);
        assert_eq!(sw.cheapest_within(2).map(|x| x.setting.as_str()), Some("d"));
        assert_eq!(sw.cheapest_within(0).map(|x| x.setting.as_str()), Some("a"));
    }
}
