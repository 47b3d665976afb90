//! The fleet's load from CloudWatch: one batched `GetMetricData` call (up to 500 instances a page), never one
//! call per instance; `None` when an instance has no data point in the window. The history read the same way, at
//! the finest period CloudWatch still keeps for each age (1 minute for 15 days, 5 minutes for 63, an hour after).

use std::time::{Duration, SystemTime};

use super::{AwsProvider, Classified};
use crate::cloud::provider::{CloudError, Series};

/// Queries per GetMetricData call (CloudWatch's limit).
const QUERIES_PER_CALL: usize = 500;

const DAY: u64 = 86_400;

/// The periods CloudWatch keeps by age: data younger than `.0` days is kept at `.1` seconds (and coarser).
const RETENTION: [(u64, u64); 3] = [(15, 60), (63, 300), (455, 3600)];

/// The stretches of `[since, until)` by age with the finest period CloudWatch keeps for each (at least `finest`),
/// newest first.
pub fn segments(
    since: SystemTime,
    until: SystemTime,
    finest: Duration,
) -> Vec<(SystemTime, SystemTime, Duration)> {
    let mut out = Vec::new();
    let mut end = until;
    for (days, period) in RETENTION {
        let oldest = until
            .checked_sub(Duration::from_secs(days * DAY))
            .unwrap_or(SystemTime::UNIX_EPOCH)
            .max(since);
        if oldest < end {
            out.push((oldest, end, Duration::from_secs(period).max(finest)));
            end = oldest;
        }
    }
    out
}

impl AwsProvider {
    /// Each of `ids`' data points of the configured metric over `[start, end)` at `period`, in `ids`' order.
    async fn points(
        &self,
        ids: &[String],
        start: SystemTime,
        end: SystemTime,
        period: Duration,
    ) -> Result<Vec<Vec<(SystemTime, f64)>>, CloudError> {
        use aws_sdk_cloudwatch::primitives::DateTime;
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
        let m = &self.config.metric;
        let period = period.as_secs().max(1) as i32;
        let mut out: Vec<Vec<(SystemTime, f64)>> = vec![Vec::new(); ids.len()];
        for (chunk_no, chunk) in ids.chunks(QUERIES_PER_CALL).enumerate() {
            let queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let metric = Metric::builder()
                        .namespace(&m.namespace)
                        .metric_name(&m.name)
                        .dimensions(Dimension::builder().name(&m.dimension).value(id).build())
                        .build();
                    MetricDataQuery::builder()
                        .id(format!("m{i}"))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(metric)
                                .period(period)
                                .stat(&m.statistic)
                                .build(),
                        )
                        .return_data(true)
                        .build()
                })
                .collect();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .retry
                    .run("cloudwatch:GetMetricData", || {
                        self.cloudwatch
                            .get_metric_data()
                            .set_metric_data_queries(Some(queries.clone()))
                            .start_time(DateTime::from(start))
                            .end_time(DateTime::from(end))
                            .scan_by(ScanBy::TimestampAscending)
                            .set_next_token(token.clone())
                            .send()
                            .classified("cloudwatch:GetMetricData")
                    })
                    .await?;
                for r in page.metric_data_results() {
                    let Some(i) = r.id().and_then(|id| id[1..].parse::<usize>().ok()) else {
                        continue;
                    };
                    if let Some(slot) = out.get_mut(chunk_no * QUERIES_PER_CALL + i) {
                        let times = r
                            .timestamps()
                            .iter()
                            .map(|t| SystemTime::try_from(*t).unwrap_or(SystemTime::UNIX_EPOCH));
                        slot.extend(times.zip(r.values().iter().copied()));
                    }
                }
                token = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The metric's statistic for each of `ids` over `[now - window, now)`, averaged over the data points.
    pub async fn metric_load(
        &self,
        ids: &[String],
        window: Duration,
        now: SystemTime,
    ) -> Result<Vec<Option<f64>>, CloudError> {
        let period = self.config.metric.period.max(Duration::from_secs(1));
        let start = now - window.max(period);
        let points = self.points(ids, start, now, period).await?;
        Ok(points
            .into_iter()
            .map(|p| (!p.is_empty()).then(|| p.iter().map(|x| x.1).sum::<f64>() / p.len() as f64))
            .collect())
    }

    /// Each of `ids`' history over `[since, until)`: one batched read per age segment (newest first), at the
    /// finest period CloudWatch keeps for it (never finer than the configured period).
    pub async fn metric_history(
        &self,
        ids: &[String],
        since: SystemTime,
        until: SystemTime,
    ) -> Result<Vec<Series>, CloudError> {
        let mut all: Vec<Vec<(SystemTime, f64)>> = vec![Vec::new(); ids.len()];
        for (start, end, period) in segments(since, until, self.config.metric.period) {
            let points = self.points(ids, start, end, period).await?;
            for (slot, p) in all.iter_mut().zip(points) {
                slot.extend(p);
            }
        }
        Ok(ids
            .iter()
            .zip(all)
            .filter(|(_, p)| !p.is_empty())
            .map(|(id, mut points)| {
                points.sort_by_key(|p| p.0);
                Series {
                    id: id.clone(),
                    points,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_read_at_the_finest_period_kept_for_its_age() {
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 * DAY);
        let ago = |d: u64| until - Duration::from_secs(d * DAY);
        let min = Duration::from_secs(60);
        assert_eq!(segments(ago(14), until, min), [(ago(14), until, min)]);
        assert_eq!(
            segments(ago(100), until, min),
            [
                (ago(15), until, min),
                (ago(63), ago(15), Duration::from_secs(300)),
                (ago(100), ago(63), Duration::from_secs(3600)),
            ]
        );
        // A configured 5-minute period is never refined.
        let five = Duration::from_secs(300);
        assert_eq!(segments(ago(1), until, five), [(ago(1), until, five)]);
        assert!(segments(until, until, min).is_empty());
    }
}
