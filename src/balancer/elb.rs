//! The `elb` balancer: instances join and leave an ELBv2 target group (ALB or NLB) through the official SDK.

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use serde::Deserialize;

use super::Balancer;
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
}
