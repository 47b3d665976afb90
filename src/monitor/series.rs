//! What the charts draw, kept in memory per target so a page view costs no query: the mean time of each phase
//! per hour over the last 24 hours, and checks and ups per UTC day over the last 30 days. Filled from the
//! history at start, then from each check.

use std::collections::VecDeque;

use super::check::{Phase, Phases};

/// One hour, in milliseconds: the width of a phase bucket.
pub const HOUR_MS: i64 = 3_600_000;
/// One day, in milliseconds: the width of an uptime bucket.
pub const DAY_MS: i64 = 86_400_000;
/// Hours of phase buckets kept.
pub const HOURS: usize = 24;
/// Days of uptime buckets kept.
pub const DAYS: usize = 30;

/// One hour of checks: how many, and the sum of each phase in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourBucket {
    /// The hour (milliseconds since the epoch / [`HOUR_MS`]).
    pub hour: i64,
    /// Checks in it.
    pub checks: u32,
    /// Sum per phase (in [`Phase::ALL`] order), milliseconds.
    pub sums_ms: [f32; 5],
}

impl HourBucket {
    /// The mean of each phase over the hour, milliseconds.
    pub fn means_ms(&self) -> [f64; 5] {
        let n = f64::from(self.checks.max(1));
        self.sums_ms.map(|s| f64::from(s) / n)
    }
}

/// One UTC day of checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayBucket {
    /// The day (milliseconds since the epoch / [`DAY_MS`]).
    pub day: i64,
    /// Checks in it.
    pub checks: u32,
    /// Of which up.
    pub ups: u32,
}

/// A target's recent history for the charts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Hours with checks, oldest first, at most [`HOURS`].
    pub hours: VecDeque<HourBucket>,
    /// Days with checks, oldest first, at most [`DAYS`].
    pub days: VecDeque<DayBucket>,
}

impl Series {
    /// Counts one check made at `at_ms`.
    pub fn record(&mut self, at_ms: i64, up: bool, phases: &Phases) {
        let mut sums = [0f32; 5];
        for p in Phase::ALL {
            sums[p as usize] = phases.get(p).as_secs_f32() * 1000.0;
        }
        self.add_hour(at_ms.div_euclid(HOUR_MS), 1, sums);
        self.add_day(at_ms.div_euclid(DAY_MS), 1, u32::from(up));
    }

    /// Adds checks to an hour (from the history or a check); hours older than the newest 24 are dropped.
    pub fn add_hour(&mut self, hour: i64, checks: u32, sums_ms: [f32; 5]) {
        match self.hours.iter_mut().rev().find(|b| b.hour == hour) {
            Some(b) => {
                b.checks += checks;
                for (s, add) in b.sums_ms.iter_mut().zip(sums_ms) {
                    *s += add;
                }
            }
            None => {
                let at = self.hours.partition_point(|b| b.hour < hour);
                self.hours.insert(
                    at,
                    HourBucket {
                        hour,
                        checks,
                        sums_ms,
                    },
                );
            }
        }
        let newest = self.hours.back().map_or(hour, |b| b.hour);
        while self
            .hours
            .front()
            .is_some_and(|b| b.hour <= newest - HOURS as i64)
        {
            self.hours.pop_front();
        }
    }

    /// Adds checks to a day; days older than the newest 30 are dropped.
    pub fn add_day(&mut self, day: i64, checks: u32, ups: u32) {
        match self.days.iter_mut().rev().find(|b| b.day == day) {
            Some(b) => {
                b.checks += checks;
                b.ups += ups;
            }
            None => {
                let at = self.days.partition_point(|b| b.day < day);
                self.days.insert(at, DayBucket { day, checks, ups });
            }
        }
        let newest = self.days.back().map_or(day, |b| b.day);
        while self
            .days
            .front()
            .is_some_and(|b| b.day <= newest - DAYS as i64)
        {
            self.days.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_add_up_and_slide() {
        let mut s = Series::default();
        let mut p = Phases::default();
        p.add(Phase::Connect, Duration::from_millis(2));
        p.add(Phase::Ttfb, Duration::from_millis(4));
        s.record(0, true, &p);
        s.record(10, false, &p);
        assert_eq!(s.hours.len(), 1);
        assert_eq!(s.hours[0].checks, 2);
        assert_eq!(s.hours[0].means_ms()[Phase::Ttfb as usize], 4.0);
        assert_eq!(
            s.days[0],
            DayBucket {
                day: 0,
                checks: 2,
                ups: 1
            }
        );
        s.record(30 * HOUR_MS, true, &p);
        assert_eq!(s.hours.len(), 1, "older than 24 hours: dropped");
        s.add_hour(29, 1, [0.0; 5]);
        assert_eq!(s.hours.iter().map(|b| b.hour).collect::<Vec<_>>(), [29, 30]);
        s.record(40 * DAY_MS, true, &p);
        assert_eq!(s.days.len(), 1);
    }
}
