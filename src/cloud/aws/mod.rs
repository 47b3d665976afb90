//! The `aws` provider: EC2 instances and their CloudWatch metrics, through the official AWS SDK.
//!
//! Credentials come from the standard chain (environment, `~/.aws` profile, SSO, instance role); the SDK's own
//! retries are off so that [`Retry`] is the one bounded policy. `create` is idempotent twice over: the
//! `ClientToken` makes EC2 itself return the same instance for a retried RunInstances, and before launching the
//! provider looks for a live instance that already carries the name (names are unique; this also covers an
//! emulator that ignores client tokens). The load of the whole fleet is one `GetMetricData` call (up to 500
//! instances a page), never one call per instance; so is its history, per age segment.

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::{
    Filter, InstanceStateName, InstanceType, LaunchTemplateSpecification, ResourceType, Tag,
    TagSpecification,
};

use crate::cloud::provider::{CloudError, CloudFuture, Instance, Provider, Series, State};
use crate::cloud::retry::Retry;

mod config;
mod metrics;
mod sdk;

pub use config::{AwsConfig, MetricConfig};
pub use sdk::{Classified, classify, sdk_config};

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

    fn history<'a>(
        &'a self,
        ids: &'a [String],
        since: SystemTime,
        until: SystemTime,
    ) -> CloudFuture<'a, Vec<Series>> {
        Box::pin(async move { self.metric_history(ids, since, until).await })
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
