//! Deterministic load generators and transforms of a trace, for checking that a policy generalises beyond the one
//! trace it was tuned on. Every generator is seeded (SplitMix64), so tests and the bench print the same numbers.

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

/// Three weeks of business traffic that grows: weekdays with a morning and an evening peak, quiet weekends, a
/// Monday surge, 4 % compound growth a week and slow multiplicative noise. Shares nothing with the shipped trace
/// (which is a cluster's CPU with one broad daily hump and no trend).
pub fn weekly_growth(days: f64, step: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let n = (days * rows_per_day(step) as f64) as usize;
    let bump = |h: f64, at: f64, width: f64| (-((h - at) / width).powi(2)).exp();
    let mut ar = 0.0;
    (0..n)
        .map(|i| {
            let t = i as f64 * step;
            let day = (t / 86_400.0).floor() as i64 % 7;
            let h = (t % 86_400.0) / 3600.0;
            let weekday = match day {
                0 => 1.15,
                1..=4 => 1.0,
                5 => 0.55,
                _ => 0.45,
            };
            let shape = 0.15 + weekday * (0.6 * bump(h, 10.5, 2.5) + 0.45 * bump(h, 20.5, 1.8));
            let growth = 1.04f64.powf(t / (7.0 * 86_400.0));
            ar = 0.995 * ar + 0.012 * rng.normal();
            shape * growth * (1.0 + ar).max(0.5)
        })
        .collect()
}

/// Two weeks of bursty request traffic: a slowly drifting base, and bursts that come in clusters (each one makes
/// the next more likely for an hour: a self-exciting process) with heavy-tailed sizes (Pareto, ×0.3 to ×4 the
/// base), reaching their size within 1–3 minutes and fading with a half-life of 10–30 minutes.
pub fn bursty(days: f64, step: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let n = (days * rows_per_day(step) as f64) as usize;
    let (mut excite, mut base) = (0.0f64, 1.0f64);
    // Active bursts: (size, rows left to ramp, ramp rows, decay per row, current level).
    let mut bursts: Vec<(f64, usize, usize, f64, f64)> = Vec::new();
    (0..n)
        .map(|_| {
            base = (base + 0.002 * rng.normal()).clamp(0.7, 1.3);
            let rate = (0.5 + excite) / 3600.0 * step;
            if rng.next_f64() < rate {
                let size = (0.3 / (1.0 - rng.next_f64()).max(1e-3).powf(1.0 / 1.6)).min(4.0);
                let ramp = (rng.range(60.0, 180.0) / step).ceil() as usize;
                let half_life = rng.range(600.0, 1800.0);
                bursts.push((size, ramp, ramp, (0.5f64).powf(step / half_life), 0.0));
                excite += 1.5;
            }
            excite *= (-step / 3600.0).exp();
            let mut extra = 0.0;
            for b in bursts.iter_mut() {
                if b.1 > 0 {
                    b.1 -= 1;
                    b.4 = b.0 * (b.2 - b.1) as f64 / b.2 as f64;
                } else {
                    b.4 *= b.3;
                }
                extra += b.4;
            }
            bursts.retain(|b| b.1 > 0 || b.4 > 0.005);
            base * (1.0 + extra) * (1.0 + 0.04 * rng.normal()).max(0.5)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_bounded() {
        for (a, b) in [
            (weekly_growth(8.0, 60.0, 1), weekly_growth(8.0, 60.0, 1)),
            (bursty(2.0, 30.0, 1), bursty(2.0, 30.0, 1)),
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
