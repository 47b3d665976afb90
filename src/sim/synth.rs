//! Generated and transformed traces for checking that a policy generalises beyond the one trace it was tuned on,
//! and the comparison the issue asks for: the baselines fixed at the setting `--sweep` picks on the shipped trace,
//! tend at its defaults, on every trace of the set.
//!
//! Every generator is deterministic (a seeded SplitMix64), so tests and the bench print the same numbers.
//! Run the whole comparison with `cargo run --release --example generalise -- TRACE.csv`.

use std::time::Duration;

use super::{PolicySpec, SimError, SimOptions, run_values, sweep_settings};

/// A small deterministic random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.next_f64().max(1e-12);
        let v = self.next_f64();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Rows per day at `step` seconds.
fn rows_per_day(step: f64) -> usize {
    (86_400.0 / step).round() as usize
}

/// A daily cycle in 0..1: low at night, a morning ramp, a broad day, an evening fall (and weekends at `weekend`).
fn daily(t_secs: f64, weekend: f64) -> f64 {
    let day = (t_secs / 86_400.0).floor() as i64;
    let h = (t_secs % 86_400.0) / 3600.0;
    let shape = 0.5 - 0.5 * (std::f64::consts::TAU * (h - 3.0) / 24.0).cos();
    let scale = if day % 7 >= 5 { weekend } else { 1.0 };
    shape * scale
}

/// Smooth diurnal web traffic: night 20 %, day 100 %, quieter weekends, slow AR(1) noise of ±3 %.
pub fn diurnal_web(days: f64, step: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let n = (days * rows_per_day(step) as f64) as usize;
    let mut ar = 0.0;
    (0..n)
        .map(|i| {
            ar = 0.98 * ar + 0.2 * 0.03 * rng.normal();
            (0.2 + 0.8 * daily(i as f64 * step, 0.6)) * (1.0 + ar)
        })
        .collect()
}

/// A daily sine with short spikes (×1.3–2 for 1–10 minutes, a few an hour) and ±5 % row noise.
pub fn sine_spikes(days: f64, step: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let n = (days * rows_per_day(step) as f64) as usize;
    let mut spike_left = 0usize;
    let mut spike = 1.0;
    (0..n)
        .map(|i| {
            let base = 0.3 + 0.7 * daily(i as f64 * step, 1.0);
            if spike_left == 0 && rng.next_f64() < 3.0 * step / 3600.0 {
                spike_left = (rng.range(60.0, 600.0) / step).ceil() as usize;
                spike = rng.range(1.3, 2.0);
            }
            let m = if spike_left > 0 {
                spike_left -= 1;
                spike
            } else {
                1.0
            };
            base * m * (1.0 + 0.05 * rng.range(-1.0, 1.0))
        })
        .collect()
}

/// Batch jobs on a steady base: jobs of 10–25 % of the peak start at random (about 4 an hour) and run 5–60 min.
pub fn batch_jobs(days: f64, step: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let n = (days * rows_per_day(step) as f64) as usize;
    let mut jobs: Vec<(usize, f64)> = Vec::new();
    (0..n)
        .map(|i| {
            if rng.next_f64() < 4.0 * step / 3600.0 {
                let rows = (rng.range(300.0, 3600.0) / step).ceil() as usize;
                jobs.push((i + rows, rng.range(0.1, 0.25)));
            }
            jobs.retain(|&(end, _)| end > i);
            0.25 + 0.1 * daily(i as f64 * step, 1.0) + jobs.iter().map(|j| j.1).sum::<f64>()
        })
        .collect()
}

/// Calm traffic with flash crowds: about one a day, the load triples over five minutes and decays over an hour.
pub fn flash_crowds(days: f64, step: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let n = (days * rows_per_day(step) as f64) as usize;
    let (mut extra, mut ramp_left): (f64, usize) = (0.0, 0);
    (0..n)
        .map(|i| {
            if ramp_left == 0 && rng.next_f64() < step / 86_400.0 {
                ramp_left = (300.0 / step).ceil() as usize;
            }
            if ramp_left > 0 {
                ramp_left -= 1;
                extra += 2.0 * step / 300.0;
            } else {
                extra *= (-step / 1800.0).exp();
            }
            let base = 0.4 + 0.2 * daily(i as f64 * step, 0.8);
            base * (1.0 + extra) * (1.0 + 0.03 * rng.normal())
        })
        .collect()
}

/// Recurring jobs: every day at 02:00, 09:30 and 14:00 a job adds 40–60 % of the base load within one row for
/// 30–90 minutes, on a noisy daily cycle (what a seasonal forecast can provision before it starts).
pub fn cron_jobs(days: f64, step: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let n = (days * rows_per_day(step) as f64) as usize;
    let starts = [2.0 * 3600.0, 9.5 * 3600.0, 14.0 * 3600.0];
    let mut job: Option<(f64, f64)> = None;
    (0..n)
        .map(|i| {
            let t = i as f64 * step;
            let tod = t % 86_400.0;
            if starts.iter().any(|s| tod >= *s && tod < s + step) {
                job = Some((t + rng.range(1800.0, 5400.0), rng.range(0.4, 0.6)));
            }
            let extra = match job {
                Some((end, x)) if t < end => x,
                _ => 0.0,
            };
            let base = 0.4 + 0.3 * daily(t, 1.0);
            base * (1.0 + extra) * (1.0 + 0.03 * rng.normal())
        })
        .collect()
}

/// A mean-reverting random walk with volatility regimes (calm hours, stormy hours).
pub fn regimes(days: f64, step: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let n = (days * rows_per_day(step) as f64) as usize;
    let (mut x, mut vol) = (0.5f64, 0.01f64);
    (0..n)
        .map(|i| {
            if rng.next_f64() < step / 7200.0 {
                vol = if vol > 0.02 { 0.01 } else { 0.05 };
            }
            let target = 0.35 + 0.3 * daily(i as f64 * step, 1.0);
            x += 0.02 * (target - x) + vol * rng.normal();
            x = x.clamp(0.05, 1.0);
            x
        })
        .collect()
}

/// The trace played backwards.
pub fn reversed(v: &[f64]) -> Vec<f64> {
    v.iter().rev().copied().collect()
}

/// The trace rotated left by `rows` (starts later, wraps around).
pub fn rotated(v: &[f64], rows: usize) -> Vec<f64> {
    let k = if v.is_empty() { 0 } else { rows % v.len() };
    v[k..].iter().chain(&v[..k]).copied().collect()
}

/// Every row multiplied by a uniform factor in 1 ± `pct` %.
pub fn noisy(v: &[f64], pct: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    v.iter()
        .map(|x| x * (1.0 + pct / 100.0 * rng.range(-1.0, 1.0)).max(0.0))
        .collect()
}

/// Each row averaged with its neighbours over `k` rows (a smoother, coarser view of the same load).
pub fn smoothed(v: &[f64], k: usize) -> Vec<f64> {
    let k = k.max(1);
    v.chunks(k)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect()
}

/// One trace of the generalisation set.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short name for the table.
    pub name: String,
    /// Raw values (scaled to `peak` by the simulator).
    pub values: Vec<f64>,
    /// Row spacing.
    pub step: Duration,
    /// Demand at the maximum, in servers.
    pub peak: f64,
}

fn case(name: &str, values: Vec<f64>, step: f64, peak: f64) -> Case {
    Case {
        name: name.into(),
        values,
        step: Duration::from_secs_f64(step),
        peak,
    }
}

/// The set: the shipped trace's transforms (its own 30 s rows, resampled to 1, 2, 5 and 60-minute rows, cut to
/// its first days) and seven days of each generator.
pub fn generalisation_set(shipped: &[f64]) -> Vec<Case> {
    let days = 7.0;
    let mut set = vec![
        case("shipped", shipped.to_vec(), 30.0, 20.0),
        case("reversed", reversed(shipped), 30.0, 20.0),
        case(
            "rotated-3.5d",
            rotated(shipped, shipped.len() / 2),
            30.0,
            20.0,
        ),
        case("noise-5%", noisy(shipped, 5.0, 7), 30.0, 20.0),
        case("peak-60", shipped.to_vec(), 30.0, 60.0),
        case("1min-rows", smoothed(shipped, 2), 60.0, 20.0),
        case(
            "first-2d",
            shipped[..shipped.len().min(5760)].to_vec(),
            30.0,
            20.0,
        ),
        case("2min-rows", smoothed(shipped, 4), 120.0, 20.0),
        case("5min-rows", smoothed(shipped, 10), 300.0, 20.0),
        case("hourly", smoothed(shipped, 120), 3600.0, 20.0),
        case(
            "first-day-1min",
            smoothed(&shipped[..shipped.len().min(2880)], 2),
            60.0,
            20.0,
        ),
    ];
    set.push(case("diurnal-web", diurnal_web(days, 30.0, 11), 30.0, 20.0));
    set.push(case(
        "diurnal-5min",
        diurnal_web(days, 300.0, 17),
        300.0,
        20.0,
    ));
    set.push(case("sine-spikes", sine_spikes(days, 30.0, 12), 30.0, 20.0));
    set.push(case("batch-jobs", batch_jobs(days, 60.0, 13), 60.0, 20.0));
    set.push(case(
        "flash-crowds",
        flash_crowds(days, 30.0, 14),
        30.0,
        30.0,
    ));
    set.push(case("regimes", regimes(days, 30.0, 15), 30.0, 20.0));
    set.push(case("cron-jobs", cron_jobs(days, 30.0, 16), 30.0, 20.0));
    set
}

/// One row of the comparison: each policy's (setting, server-hours, overloaded minutes, meets SLO).
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case name.
    pub case: String,
    /// Allowed overloaded minutes.
    pub slo_minutes: f64,
    /// Per policy: name, server-hours, overloaded minutes, meets SLO.
    pub policies: Vec<(String, f64, u64, bool)>,
}

impl CaseResult {
    /// tend's cost over the cheapest baseline (not tend, not the oracle) that meets the SLO.
    pub fn ratio(&self) -> Option<f64> {
        let tend = self.policies.iter().find(|p| p.0 == "tend")?.1;
        let best = self
            .policies
            .iter()
            .filter(|p| p.0 != "tend" && p.0 != "oracle" && p.3)
            .map(|p| p.1)
            .min_by(f64::total_cmp)?;
        Some(tend / best)
    }
    /// Whether tend meets the SLO.
    pub fn tend_ok(&self) -> bool {
        self.policies.iter().any(|p| p.0 == "tend" && p.3)
    }
}

/// The baselines' settings `--sweep` picks on `shipped` (30 s rows, peak 20), as `NAME:SETTING` specs.
pub fn swept_baselines(shipped: &[f64], opts: &SimOptions) -> Result<Vec<PolicySpec>, SimError> {
    let opts = SimOptions {
        sweep: true,
        policies: ["seed", "aws-simple", "aws-target-tracking", "k8s-hpa"]
            .iter()
            .map(|n| PolicySpec {
                name: n.to_string(),
                knobs: Vec::new(),
            })
            .collect(),
        ..opts.clone()
    };
    let report = run_values(shipped, "shipped", &opts)?;
    report
        .policies
        .iter()
        .filter(|p| !sweep_settings(&p.name).is_empty())
        .map(|p| PolicySpec::parse(&format!("{}:{}", p.name, p.setting)))
        .collect()
}

/// Runs tend (defaults), the `baselines` (fixed settings) and the oracle on every case.
pub fn compare(
    cases: &[Case],
    baselines: &[PolicySpec],
    opts: &SimOptions,
) -> Result<Vec<CaseResult>, SimError> {
    let mut specs = vec![PolicySpec::parse("tend")?];
    specs.extend(baselines.iter().cloned());
    specs.push(PolicySpec::parse("oracle")?);
    cases
        .iter()
        .map(|c| {
            let o = SimOptions {
                step: c.step,
                peak: c.peak,
                sweep: false,
                policies: specs.clone(),
                ..opts.clone()
            };
            let r = run_values(&c.values, &c.name, &o)?;
            Ok(CaseResult {
                case: c.name.clone(),
                slo_minutes: r.slo_minutes,
                policies: r
                    .policies
                    .iter()
                    .map(|p| {
                        (
                            p.name.clone(),
                            p.server_hours,
                            p.overloaded_minutes,
                            p.meets_slo,
                        )
                    })
                    .collect(),
            })
        })
        .collect()
}

/// The comparison as a table: per case, each policy's server-hours and overloaded minutes (`*` = misses the
/// SLO), and tend over the cheapest baseline meeting the SLO.
pub fn table(results: &[CaseResult]) -> String {
    let mut out = String::new();
    let Some(first) = results.first() else {
        return out;
    };
    out += &format!("{:<14} {:>5}", "trace", "slo");
    for p in &first.policies {
        out += &format!(" {:>20}", p.0);
    }
    out += "  tend/best\n";
    for r in results {
        out += &format!("{:<14} {:>5.1}", r.case, r.slo_minutes);
        for p in &r.policies {
            let cell = format!("{:.0}/{}{}", p.1, p.2, if p.3 { "" } else { "*" });
            out += &format!(" {cell:>20}");
        }
        let verdict = match (r.tend_ok(), r.ratio()) {
            (false, _) => "tend misses SLO".to_string(),
            (true, Some(x)) => format!("{x:.3}{}", if x <= 0.8 { " ok" } else { "" }),
            (true, None) => "no baseline ok".to_string(),
        };
        out += &format!("  {verdict}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_bounded() {
        for (a, b) in [
            (diurnal_web(1.0, 30.0, 1), diurnal_web(1.0, 30.0, 1)),
            (sine_spikes(1.0, 30.0, 1), sine_spikes(1.0, 30.0, 1)),
            (batch_jobs(1.0, 60.0, 1), batch_jobs(1.0, 60.0, 1)),
            (flash_crowds(1.0, 30.0, 1), flash_crowds(1.0, 30.0, 1)),
            (regimes(1.0, 30.0, 1), regimes(1.0, 30.0, 1)),
            (cron_jobs(1.0, 30.0, 1), cron_jobs(1.0, 30.0, 1)),
        ] {
            assert_eq!(a, b);
            assert!(!a.is_empty() && a.iter().all(|x| x.is_finite() && *x >= 0.0));
            let (lo, hi) = a
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
            assert!(hi > lo * 1.2, "a flat trace tests nothing: {lo}..{hi}");
        }
        assert_ne!(sine_spikes(1.0, 30.0, 1), sine_spikes(1.0, 30.0, 2));
    }

    #[test]
    fn transforms_keep_the_values() {
        let v = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(reversed(&v), vec![4.0, 3.0, 2.0, 1.0]);
        assert_eq!(rotated(&v, 1), vec![2.0, 3.0, 4.0, 1.0]);
        assert_eq!(smoothed(&v, 2), vec![1.5, 3.5]);
        let n = noisy(&v, 5.0, 3);
        assert!(n.iter().zip(&v).all(|(a, b)| (a / b - 1.0).abs() <= 0.05));
    }
}
