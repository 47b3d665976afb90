//! The fleet's metric history as the policy learns it: per-instance load series from the provider turned into
//! the fleet's demand (servers) at the metric's resolution, which is read off the data (basic CloudWatch
//! monitoring has a point every 5 minutes, detailed every minute). Pure.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::cloud::Series;
use crate::core::stats::median;
use crate::core::time::{from_millis, millis};

/// The fleet's past demand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Past {
    /// The metric's resolution (the typical spacing of one instance's points); zero when it cannot be told.
    pub resolution: Duration,
    /// Demand in servers (median load × instances reporting / 100), oldest first, one point per resolution.
    pub demand: Vec<(SystemTime, f64)>,
}

impl Past {
    /// How much time the points cover.
    pub fn span(&self) -> Duration {
        match (self.demand.first(), self.demand.last()) {
            (Some(a), Some(b)) => b.0.duration_since(a.0).unwrap_or_default() + self.resolution,
            _ => Duration::ZERO,
        }
    }
}

/// The typical spacing of one series' points (the median gap); `None` with fewer than two points.
fn spacing(points: &[(SystemTime, f64)]) -> Option<Duration> {
    let mut times: Vec<i64> = points.iter().map(|p| millis(p.0)).collect();
    times.sort_unstable();
    times.dedup();
    let gaps = times.windows(2).map(|w| Some((w[1] - w[0]) as f64));
    median(gaps).map(|ms| Duration::from_millis(ms.round() as u64))
}

/// The fleet's demand from each instance's load series. The resolution is the finest spacing any instance's
/// points show (instances with detailed monitoring set it); each point falls into the resolution's bucket
/// (counted from the earliest point: the provider aligns every series' periods the same way), and a
/// bucket's demand is the median load of the instances with a point in it times their count, as the policy
/// estimates demand live (a booting instance's busy first minutes do not count as demand).
pub fn fleet_demand(series: &[Series]) -> Past {
    let resolution = series
        .iter()
        .filter_map(|s| spacing(&s.points))
        .filter(|d| !d.is_zero())
        .min()
        .unwrap_or(Duration::ZERO);
    let bucket_ms = (resolution.as_millis() as i64).max(1);
    let origin = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| millis(p.0)))
        .min()
        .unwrap_or(0);
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for s in series {
        for &(at, load) in &s.points {
            if load.is_finite() && load >= 0.0 {
                buckets
                    .entry((millis(at) - origin).div_euclid(bucket_ms))
                    .or_default()
                    .push(load);
            }
        }
    }
    // The edges of a read may hold only some instances' points (a period cut by the start, a point not yet
    // published at the end): a bucket there with fewer points than its neighbour would read as a fall and a rise.
    let counts: Vec<usize> = buckets.values().map(Vec::len).collect();
    if counts.len() >= 2 {
        if counts[counts.len() - 1] < counts[counts.len() - 2] {
            buckets.pop_last();
        }
        if counts[0] < counts[1] {
            buckets.pop_first();
        }
    }
    let demand = buckets
        .into_iter()
        .filter_map(|(b, loads)| {
            let n = loads.len() as f64;
            median(loads.into_iter().map(Some))
                .map(|m| (from_millis(origin + b * bucket_ms), m * n / 100.0))
        })
        .collect();
    Past { resolution, demand }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000 + s)
    }

    fn series(id: &str, every: u64, n: u64, load: impl Fn(u64) -> f64) -> Series {
        Series {
            id: id.into(),
            points: (0..n).map(|k| (at(k * every), load(k))).collect(),
        }
    }

    #[test]
    fn demand_is_the_median_times_the_instances_reporting() {
        let past = fleet_demand(&[
            series("a", 60, 10, |_| 75.0),
            series("b", 60, 10, |_| 75.0),
            // c joined at the 5th minute, busy at first.
            Series {
                id: "c".into(),
                points: (5..10)
                    .map(|k| (at(k * 60), if k == 5 { 100.0 } else { 50.0 }))
                    .collect(),
            },
        ]);
        assert_eq!(past.resolution, Duration::from_secs(60));
        assert_eq!(past.demand.len(), 10);
        assert_eq!(past.demand[0], (at(0), 1.5));
        assert_eq!(past.demand[5].1, 2.25, "75, 75, 100: median 75 on 3");
        assert_eq!(past.demand[9].1, 1.5 * 1.5, "75, 75, 50: median 75 on 3");
        assert_eq!(past.span(), Duration::from_secs(600));
    }

    #[test]
    fn partial_buckets_at_the_edges_are_left_out() {
        // The provider put b's points one period later than a's (they were written across a period boundary): the
        // first bucket holds a alone, the last b alone.
        let a = series("a", 60, 10, |_| 50.0);
        let b = Series {
            id: "b".into(),
            points: (1..=10).map(|k| (at(k * 60), 50.0)).collect(),
        };
        let past = fleet_demand(&[a, b]);
        assert_eq!(past.demand.len(), 9, "{past:?}");
        assert!(past.demand.iter().all(|d| d.1 == 1.0), "{past:?}");
    }

    #[test]
    fn basic_monitoring_is_told_from_detailed_by_the_spacing() {
        let basic = fleet_demand(&[
            series("a", 300, 12, |_| 40.0),
            series("b", 300, 12, |_| 60.0),
        ]);
        assert_eq!(basic.resolution, Duration::from_secs(300));
        assert_eq!(basic.demand.len(), 12);
        assert_eq!(basic.demand[3].1, 1.0);
        // One instance with detailed monitoring sets the resolution.
        let mixed = fleet_demand(&[
            series("a", 300, 12, |_| 40.0),
            series("b", 60, 60, |_| 60.0),
        ]);
        assert_eq!(mixed.resolution, Duration::from_secs(60));
        assert_eq!(fleet_demand(&[]), Past::default());
    }
}
