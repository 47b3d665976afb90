//! Schedule lag: how late each check started compared with its slot, as a lock-free histogram.
//!
//! Lag is the monitor's own health signal: when it grows, checks queue behind the concurrency limit or the
//! machine is overloaded, and "down" verdicts arrive late. Buckets are 4 per power of two of microseconds
//! (quantiles are within ~19% and reported as the bucket's upper bound), which fits 10,000 targets without
//! allocation or locks on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB: usize = 4;
const BUCKETS: usize = 40 * SUB;

/// A histogram of schedule lag, shared by every target task.
#[derive(Debug)]
pub struct LagHistogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
    max_micros: AtomicU64,
    skipped: AtomicU64,
}

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }
}

fn bucket_of(micros: u64) -> usize {
    if micros < SUB as u64 {
        return micros as usize;
    }
    let log = 63 - u64::from(micros.leading_zeros()) as usize; // micros >= 4, so log >= 2
    let frac = ((micros >> (log - 2)) & 0b11) as usize;
    (log * SUB + frac).min(BUCKETS - 1)
}

fn upper_bound(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64 + 1;
    }
    let (log, frac) = (bucket / SUB, (bucket % SUB) as u64);
    ((SUB as u64 + frac + 1) << log) / SUB as u64
}

impl LagHistogram {
    /// Records one check's lag.
    pub fn record(&self, lag: Duration) {
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    /// Counts slots skipped because the previous check of the same target was still running.
    pub fn record_skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// A consistent-enough copy for reporting and /metrics.
    pub fn snapshot(&self) -> LagSnapshot {
        LagSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
            max: Duration::from_micros(self.max_micros.load(Ordering::Relaxed)),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}

/// A copy of the histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct LagSnapshot {
    buckets: Vec<u64>,
    /// Checks recorded.
    pub count: u64,
    /// Sum of all lags (for a Prometheus summary/histogram `_sum`).
    pub sum: Duration,
    /// Largest lag seen.
    pub max: Duration,
    /// Slots skipped because a target's previous check was still running.
    pub skipped: u64,
}

impl LagSnapshot {
    /// The lag below which a share `q` (0.0..=1.0) of checks started (bucket upper bound).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(upper_bound(i)).min(self.max);
            }
        }
        self.max
    }

    /// Cumulative counts at the given upper bounds, for a Prometheus histogram (`le` buckets).
    pub fn cumulative(&self, bounds: &[Duration]) -> Vec<u64> {
        bounds
            .iter()
            .map(|b| {
                let micros = u64::try_from(b.as_micros()).unwrap_or(u64::MAX);
                self.buckets
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| upper_bound(*i) <= micros)
                    .map(|(_, n)| n)
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut last = 0;
        for micros in (0..100_000u64).chain([1 << 30, u64::MAX / 2]) {
            let b = bucket_of(micros);
            assert!(
                b >= last || micros > 100_000,
                "bucket of {micros} went back"
            );
            last = b;
            if b < BUCKETS - 1 {
                assert!(
                    upper_bound(b) > micros,
                    "{micros} not below the bound of bucket {b}"
                );
                assert!(
                    upper_bound(b) as f64 <= (micros as f64 + 1.0) * 1.26,
                    "{micros}: bound too loose"
                );
            }
        }
    }

    #[test]
    fn quantiles() {
        let h = LagHistogram::default();
        assert_eq!(h.snapshot().quantile(0.5), Duration::ZERO);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        let p50 = s.quantile(0.5).as_secs_f64() * 1000.0;
        let p99 = s.quantile(0.99).as_secs_f64() * 1000.0;
        assert!((50.0..=63.0).contains(&p50), "p50 {p50}");
        assert!((99.0..=100.0).contains(&p99), "p99 {p99}");
        assert_eq!(s.max, Duration::from_millis(100));
        assert_eq!(s.count, 100);
        assert_eq!(
            s.cumulative(&[Duration::from_millis(10), Duration::from_secs(1)])[1],
            100
        );
    }
}
