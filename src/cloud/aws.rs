//! The `aws` provider: EC2 instances and their CloudWatch metrics, through the official AWS SDK.
//!
//! Credentials come from the standard chain (environment, `~/.aws` profile, SSO, instance role); the SDK's own
//! retries are off so that [`Retry`] is the one bounded policy. `create` is idempotent twice over: the
//! `ClientToken` makes EC2 itself return the same instance for a retried RunInstances, and before launching the
//! provider looks for a live instance that already carries the name (names are unique; this also covers an
//! emulator that ignores client tokens). The load of the whole fleet is one `GetMetricData` call (up to 500
//! instances a page), never one call per instance.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::{
    Filter, InstanceStateName, InstanceType, LaunchTemplateSpecification, ResourceType, Tag,
    TagSpecification,
};
use serde::Deserialize;

use super::{CloudError, CloudFuture, Instance, Provider, Retry, State};
use crate::core::Invalid;

/// `[cloud.aws]`: the region, how to launch an instance, and which metric is its load.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Region (`eu-west-1`) [default: from the environment or profile].
    pub region: Option<String>,
    /// A profile of `~/.aws/config` [default: the standard chain].
    pub profile: Option<String>,
    /// Another endpoint for every service, e.g. an AWS API emulator (`http://127.0.0.1:5000`).
    pub endpoint_url: Option<String>,
    /// Launch template id (`lt-…`) or name; the settings below override it.
    pub launch_template: Option<String>,
    /// Launch template version [default: the template's default version].
    pub launch_template_version: Option<String>,
    /// AMI id (`ami-…`); required without a launch template.
    pub image_id: Option<String>,
    /// Instance type (`t3.micro`).
    pub instance_type: Option<String>,
    /// Subnet to launch into.
    pub subnet_id: Option<String>,
    /// Security groups (ids).
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// Key pair name for SSH.
    pub key_name: Option<String>,
    /// Tags for every instance, besides `Name` (which tend sets).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Instances per DescribeInstances page (5..=1000) [default: 1000].
    pub page_size: Option<i32>,
    /// Which CloudWatch metric is an instance's load.
    #[serde(default)]
    pub metric: MetricConfig,
}

/// `[cloud.aws.metric]`: the CloudWatch metric read as each instance's load (percent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// Namespace [default: `AWS/EC2`; the CloudWatch agent's is `CWAgent`].
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Metric name [default: `CPUUtilization`; e.g. `mem_used_percent`].
    #[serde(default = "default_metric")]
    pub name: String,
    /// The dimension whose value is the instance id [default: `InstanceId`].
    #[serde(default = "default_dimension")]
    pub dimension: String,
    /// Statistic [default: `Average`].
    #[serde(default = "default_statistic")]
    pub statistic: String,
    /// Granularity of the data points read [default: 60s; the window is rounded up to it].
    #[serde(default = "default_period", with = "crate::core::duration")]
    pub period: Duration,
}

fn default_namespace() -> String {
    "AWS/EC2".into()
}
fn default_metric() -> String {
    "CPUUtilization".into()
}
fn default_dimension() -> String {
    "InstanceId".into()
}
fn default_statistic() -> String {
    "Average".into()
}
fn default_period() -> Duration {
    Duration::from_secs(60)
}

impl Default for MetricConfig {
    fn default() -> Self {
        MetricConfig {
            namespace: default_namespace(),
            name: default_metric(),
            dimension: default_dimension(),
            statistic: default_statistic(),
            period: default_period(),
        }
    }
}

impl AwsConfig {
    /// Pure checks; `path` is the table's key path.
    pub fn validate(&self, path: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.launch_template.is_none() && self.image_id.is_none() {
            out.push(Invalid::new(
                format!("{path}.launch_template"),
                "set launch_template, or image_id (with instance_type, subnet_id, ...)",
            ));
        }
        if self.launch_template.is_none() && self.image_id.is_some() && self.instance_type.is_none()
        {
            out.push(Invalid::new(
                format!("{path}.instance_type"),
                "is required with image_id and no launch_template",
            ));
        }
        if let Some(p) = self.page_size
            && !(5..=1000).contains(&p)
        {
            out.push(Invalid::new(
                format!("{path}.page_size"),
                "must be within 5..=1000",
            ));
        }
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            out.push(Invalid::new(
                format!("{path}.endpoint_url"),
                "must start with http:// or https://",
            ));
        }
        let p = self.metric.period.as_secs();
        if p == 0 || (p >= 60 && p % 60 != 0) || ![1, 5, 10, 30].contains(&p) && p < 60 {
            out.push(Invalid::new(
                format!("{path}.metric.period"),
                "must be 1s, 5s, 10s, 30s or a multiple of 60s",
            ));
        }
        if self.tags.keys().any(|k| k == "Name") {
            out.push(Invalid::new(
                format!("{path}.tags"),
                "must not set `Name`: tend names its instances",
            ));
        }
        out
    }
}

/// The SDK configuration for `region`, `endpoint_url` and `profile`, with the SDK's retries off.
pub async fn sdk_config(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    profile: Option<&str>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u);
    }
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    loader.load().await
}

/// Error codes that mean "try again later" whatever the HTTP status.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "EC2ThrottledException",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Turns an SDK error into a [`CloudError`]: transient for throttling, 5xx, timeouts and connection failures,
/// permanent otherwise; the text has the AWS error code and message.
pub fn classify<E>(
    op: &str,
    err: aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
) -> CloudError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_ec2::error::{DisplayErrorContext, SdkError};
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("Unknown");
            let message = se.err().message().unwrap_or("(no message)");
            let text = format!("{code}: {message} (HTTP {status})");
            if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code) {
                CloudError::transient(op, text)
            } else {
                CloudError::permanent(op, text)
            }
        }
        SdkError::ConstructionFailure(_) => {
            CloudError::permanent(op, format!("{}", DisplayErrorContext(&err)))
        }
        _ => CloudError::transient(op, format!("{}", DisplayErrorContext(&err))),
    }
}

/// EC2 instances with a name prefix, their load from CloudWatch.
#[derive(Debug, Clone)]
pub struct AwsProvider {
    ec2: aws_sdk_ec2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    config: AwsConfig,
    retry: Retry,
}

impl AwsProvider {
    /// Opens the clients for `config` (credentials from the standard chain).
    pub async fn from_config(config: &AwsConfig, retry: Retry) -> Result<AwsProvider, CloudError> {
        let sdk = sdk_config(
            config.region.as_deref(),
            config.endpoint_url.as_deref(),
            config.profile.as_deref(),
        )
        .await;
        if sdk.region().is_none() {
            return Err(CloudError::permanent(
                "aws:config",
                "no region: set [cloud.aws] region, AWS_REGION, or a profile with a region",
            ));
        }
        Ok(Self::with_sdk_config(&sdk, config.clone(), retry))
    }

    /// Uses an SDK configuration built by the caller (tests pass static credentials and an emulator's URL).
    pub fn with_sdk_config(
        sdk: &aws_config::SdkConfig,
        config: AwsConfig,
        retry: Retry,
    ) -> AwsProvider {
        AwsProvider {
            ec2: aws_sdk_ec2::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            config,
            retry,
        }
    }

    async fn describe(
        &self,
        filters: Vec<Filter>,
        retry: &Retry,
    ) -> Result<Vec<Instance>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retry
                .run("ec2:DescribeInstances", || {
                    self.ec2
                        .describe_instances()
                        .set_filters(Some(filters.clone()))
                        .max_results(self.config.page_size.unwrap_or(1000))
                        .set_next_token(token.clone())
                        .send()
                        .classified("ec2:DescribeInstances")
                })
                .await?;
            for r in page.reservations() {
                out.extend(r.instances().iter().filter_map(convert));
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    fn run_request(
        &self,
        name: &str,
        token: &str,
    ) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
        let c = &self.config;
        let mut tags = vec![Tag::builder().key("Name").value(name).build()];
        tags.extend(
            c.tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build()),
        );
        let template = c.launch_template.as_ref().map(|t| {
            let spec = LaunchTemplateSpecification::builder()
                .set_version(c.launch_template_version.clone());
            if t.starts_with("lt-") {
                spec.launch_template_id(t).build()
            } else {
                spec.launch_template_name(t).build()
            }
        });
        self.ec2
            .run_instances()
            .min_count(1)
            .max_count(1)
            .client_token(token)
            .set_launch_template(template)
            .set_image_id(c.image_id.clone())
            .set_instance_type(c.instance_type.as_deref().map(InstanceType::from))
            .set_subnet_id(c.subnet_id.clone())
            .set_security_group_ids(
                (!c.security_group_ids.is_empty()).then(|| c.security_group_ids.clone()),
            )
            .set_key_name(c.key_name.clone())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags))
                    .build(),
            )
    }
}

/// Wraps an SDK call (any AWS service) so that [`Retry::run`] sees [`CloudError`]s.
pub trait Classified<T> {
    /// Awaits the call and classifies its error.
    fn classified(self, op: &'static str) -> impl Future<Output = Result<T, CloudError>> + Send;
}

impl<F, T, E> Classified<T> for F
where
    F: Future<
            Output = Result<
                T,
                aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
            >,
        > + Send,
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    async fn classified(self, op: &'static str) -> Result<T, CloudError> {
        self.await.map_err(|e| classify(op, e))
    }
}

fn state_of(name: &InstanceStateName) -> State {
    match name {
        InstanceStateName::Pending => State::Pending,
        InstanceStateName::Running => State::Running,
        InstanceStateName::Stopped => State::Stopped,
        InstanceStateName::Terminated => State::Terminated,
        _ => State::Stopping,
    }
}

fn convert(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let id = i.instance_id()?.to_string();
    let name = i
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
        .unwrap_or_default()
        .to_string();
    Some(Instance {
        id,
        name,
        state: i
            .state()
            .and_then(|s| s.name())
            .map_or(State::Pending, state_of),
        launched_at: i
            .launch_time()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH),
        private_address: i.private_ip_address().map(str::to_string),
        public_address: i.public_ip_address().map(str::to_string),
        port: None,
    })
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

const NOT_TERMINATED: &[&str] = &["pending", "running", "shutting-down", "stopping", "stopped"];

impl Provider for AwsProvider {
    fn list<'a>(&'a self, prefix: &'a str) -> CloudFuture<'a, Vec<Instance>> {
        Box::pin(async move {
            let pattern = format!("{prefix}*");
            let mut all = self
                .describe(
                    vec![
                        filter("tag:Name", &[&pattern]),
                        filter("instance-state-name", NOT_TERMINATED),
                    ],
                    &self.retry,
                )
                .await?;
            // The tag filter is a wildcard; keep exactly the names with the prefix.
            all.retain(|i| i.name.starts_with(prefix));
            Ok(all)
        })
    }

    fn create<'a>(&'a self, name: &'a str, client_token: &'a str) -> CloudFuture<'a, Instance> {
        Box::pin(async move {
            // Each attempt first looks for the instance a lost answer may have created: names are unique.
            let once = Retry {
                attempts: 1,
                ..self.retry.clone()
            };
            self.retry
                .run("ec2:RunInstances", || async {
                    let existing = self
                        .describe(
                            vec![
                                filter("tag:Name", &[name]),
                                filter("instance-state-name", &["pending", "running"]),
                            ],
                            &once,
                        )
                        .await?;
                    if let Some(found) = existing.into_iter().next() {
                        return Ok(found);
                    }
                    let out = self
                        .run_request(name, client_token)
                        .send()
                        .classified("ec2:RunInstances")
                        .await?;
                    out.instances().iter().find_map(convert).ok_or_else(|| {
                        CloudError::permanent("ec2:RunInstances", "the answer lists no instance")
                    })
                })
                .await
        })
    }

    fn terminate<'a>(&'a self, id: &'a str) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            let result = self
                .retry
                .run("ec2:TerminateInstances", || {
                    self.ec2
                        .terminate_instances()
                        .instance_ids(id)
                        .send()
                        .classified("ec2:TerminateInstances")
                })
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(CloudError::Permanent { message, .. })
                    if message.starts_with("InvalidInstanceID.NotFound") =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })
    }

    fn load<'a>(
        &'a self,
        ids: &'a [String],
        window: Duration,
    ) -> CloudFuture<'a, Vec<Option<f64>>> {
        Box::pin(async move { self.metric_load(ids, window, SystemTime::now()).await })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks() {
        let c: AwsConfig = toml::from_str(
            "image_id = \"ami-1\"\npage_size = 2\nendpoint_url = \"localhost\"\n[tags]\nName = \"x\"\n[metric]\nperiod = \"45s\"\n",
        )
        .unwrap();
        let paths: Vec<_> = c
            .validate("cloud.aws")
            .into_iter()
            .map(|i| i.path)
            .collect();
        assert_eq!(
            paths,
            [
                "cloud.aws.instance_type",
                "cloud.aws.page_size",
                "cloud.aws.endpoint_url",
                "cloud.aws.metric.period",
                "cloud.aws.tags"
            ]
        );
    }
}
