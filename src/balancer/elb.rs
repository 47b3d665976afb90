//! The `elb` balancer: instances join and leave an ELBv2 target group (ALB or NLB) through the official SDK.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetHealthStateEnum};
use serde::Deserialize;

use super::edge::Balancer;
use crate::cloud::aws::{AwsConfig, Classified, sdk_config};
use crate::cloud::{CloudError, CloudFuture, Instance, Retry};
use crate::core::Invalid;

/// `kind = "elb"`: an ELBv2 target group of type `instance`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElbConfig {
    /// The target group's ARN.
    pub target_group_arn: String,
    /// Port to register the instances on [default: the target group's port].
    pub port: Option<u16>,
    /// Region [default: `[cloud.aws] region`, then the environment].
    pub region: Option<String>,
    /// Another endpoint, e.g. an AWS API emulator [default: `[cloud.aws] endpoint_url`].
    pub endpoint_url: Option<String>,
}

impl ElbConfig {
    /// Pure checks.
    pub fn validate(&self, path: &str) -> Vec<Invalid> {
        if !self.target_group_arn.starts_with("arn:") {
            return vec![Invalid::new(
                format!("{path}.target_group_arn"),
                "must be a target group ARN (arn:aws:elasticloadbalancing:…)",
            )];
        }
        vec![]
    }
}

/// AWS's deregistration delay when the target group does not say.
const DEFAULT_DEREGISTRATION_DELAY_SECS: u64 = 300;
/// How often a drain looks at the target's state.
const DRAIN_POLL: Duration = Duration::from_secs(1);

/// Registers instances in one target group.
#[derive(Debug, Clone)]
pub struct ElbBalancer {
    client: aws_sdk_elasticloadbalancingv2::Client,
    config: ElbConfig,
    retry: Retry,
}

impl ElbBalancer {
    /// Opens the client (credentials from the standard chain).
    pub async fn from_config(
        config: &ElbConfig,
        aws: Option<&AwsConfig>,
        retry: Retry,
    ) -> Result<ElbBalancer, CloudError> {
        let region = config
            .region
            .as_deref()
            .or(aws.and_then(|a| a.region.as_deref()));
        let endpoint = config
            .endpoint_url
            .as_deref()
            .or(aws.and_then(|a| a.endpoint_url.as_deref()));
        let sdk = sdk_config(region, endpoint, aws.and_then(|a| a.profile.as_deref())).await;
        Ok(Self::with_sdk_config(&sdk, config.clone(), retry))
    }

    /// Uses an SDK configuration built by the caller.
    pub fn with_sdk_config(
        sdk: &aws_config::SdkConfig,
        config: ElbConfig,
        retry: Retry,
    ) -> ElbBalancer {
        ElbBalancer {
            client: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            config,
            retry,
        }
    }

    /// The target group's deregistration delay (`deregistration_delay.timeout_seconds`; AWS's default is 300 s).
    pub async fn deregistration_delay(&self) -> Result<Duration, CloudError> {
        let out = self
            .retry
            .run("elbv2:DescribeTargetGroupAttributes", || {
                self.client
                    .describe_target_group_attributes()
                    .target_group_arn(&self.config.target_group_arn)
                    .send()
                    .classified("elbv2:DescribeTargetGroupAttributes")
            })
            .await?;
        let seconds = out
            .attributes()
            .iter()
            .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
            .and_then(|a| a.value())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(DEFAULT_DEREGISTRATION_DELAY_SECS);
        Ok(Duration::from_secs(seconds))
    }

    /// Whether the target group still drains `instance` (its state is `draining`).
    async fn draining(&self, instance: &Instance) -> Result<bool, CloudError> {
        let out = self
            .retry
            .run("elbv2:DescribeTargetHealth", || {
                self.client
                    .describe_target_health()
                    .target_group_arn(&self.config.target_group_arn)
                    .targets(self.target(instance))
                    .send()
                    .classified("elbv2:DescribeTargetHealth")
            })
            .await?;
        Ok(out.target_health_descriptions().iter().any(|d| {
            d.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Draining)
        }))
    }

    fn target(&self, instance: &Instance) -> TargetDescription {
        TargetDescription::builder()
            .id(&instance.id)
            .set_port(self.config.port.map(i32::from))
            .build()
    }
}

impl Balancer for ElbBalancer {
    fn register<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            self.retry
                .run("elbv2:RegisterTargets", || {
                    self.client
                        .register_targets()
                        .target_group_arn(&self.config.target_group_arn)
                        .targets(self.target(instance))
                        .send()
                        .classified("elbv2:RegisterTargets")
                })
                .await
                .map(|_| ())
        })
    }

    fn deregister<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            self.retry
                .run("elbv2:DeregisterTargets", || {
                    self.client
                        .deregister_targets()
                        .target_group_arn(&self.config.target_group_arn)
                        .targets(self.target(instance))
                        .send()
                        .classified("elbv2:DeregisterTargets")
                })
                .await
                .map(|_| ())
        })
    }

    /// Deregisters, then waits while the target is `draining`: until its connections end (ELB then finishes
    /// early) or the target group's deregistration delay is over.
    fn drain<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            let delay = self.deregistration_delay().await?;
            self.deregister(instance).await?;
            let deadline = tokio::time::Instant::now() + delay;
            while tokio::time::Instant::now() < deadline && self.draining(instance).await? {
                tokio::time::sleep(DRAIN_POLL.min(delay)).await;
            }
            Ok(())
        })
    }
}
