//! `[cloud.aws]`: the region, how to launch an instance, and which CloudWatch metric is its load.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

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
