//! The fleet's load from CloudWatch: one batched `GetMetricData` call (up to 500 instances a page), never one
//! call per instance; `None` when an instance has no data point in the window.

use std::time::{Duration, SystemTime};

use super::{AwsProvider, Classified};
use crate::cloud::CloudError;

impl AwsProvider {
    /// The metric's statistic for each of `ids` over `[now - window, now)`, averaged over the data points.
    pub async fn metric_load(
        &self,
        ids: &[String],
        window: Duration,
        now: SystemTime,
    ) -> Result<Vec<Option<f64>>, CloudError> {
        use aws_sdk_cloudwatch::primitives::DateTime;
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
        let m = &self.config.metric;
        let period = m.period.as_secs().max(1);
        let window_secs = window.as_secs().max(period);
        let start = now - Duration::from_secs(window_secs);
        let mut sums: Vec<(f64, usize)> = vec![(0.0, 0); ids.len()];
        for (chunk_no, chunk) in ids.chunks(500).enumerate() {
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
                                .period(period as i32)
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
                            .end_time(DateTime::from(now))
                            .set_next_token(token.clone())
                            .send()
                            .classified("cloudwatch:GetMetricData")
                    })
                    .await?;
                for r in page.metric_data_results() {
                    let Some(i) = r.id().and_then(|id| id[1..].parse::<usize>().ok()) else {
                        continue;
                    };
                    if let Some(slot) = sums.get_mut(chunk_no * 500 + i) {
                        for v in r.values() {
                            slot.0 += v;
                            slot.1 += 1;
                        }
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
        Ok(sums
            .into_iter()
            .map(|(sum, n)| (n > 0).then(|| sum / n as f64))
            .collect())
    }
}
