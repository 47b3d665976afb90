//! `[cloud]`: which provider runs the fleet, and its settings in `[cloud.aws]`, `[cloud.local]` or `[cloud.sim]`.

use serde::Deserialize;

use super::aws::AwsConfig;
use super::local::LocalConfig;
use super::retry::Retry;
use super::sim::SimConfig;
use crate::core::Invalid;

/// Which provider runs the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    /// EC2 and CloudWatch (settings in `[cloud.aws]`).
    Aws,
    /// Processes on this machine (settings in `[cloud.local]`).
    Local,
    /// A simulated fleet (settings in `[cloud.sim]`).
    Sim,
}

/// `[cloud]`: where the fleet's instances come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// `aws`, `local` or `sim`; its settings go in the sub-table of the same name.
    pub provider: ProviderName,
    /// Every instance tend manages is named with this prefix (plus `-` and a unique suffix); instances whose
    /// name starts otherwise are never touched.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Timeout and retries of every provider call.
    #[serde(default)]
    pub retry: Retry,
    /// `[cloud.aws]`: EC2 and CloudWatch settings.
    pub aws: Option<AwsConfig>,
    /// `[cloud.local]`: the worker command and its ports.
    pub local: Option<LocalConfig>,
    /// `[cloud.sim]`: the simulated fleet.
    pub sim: Option<SimConfig>,
}

fn default_prefix() -> String {
    "tend".into()
}

/// The chosen provider with its settings: what `cloud::build` matches on.
#[derive(Debug, Clone, Copy)]
pub enum ProviderKind<'a> {
    /// `provider = "aws"`.
    Aws(&'a AwsConfig),
    /// `provider = "local"`.
    Local(&'a LocalConfig),
    /// `provider = "sim"`.
    Sim(&'a SimConfig),
}

static DEFAULT_LOCAL: std::sync::LazyLock<LocalConfig> =
    std::sync::LazyLock::new(LocalConfig::default);
static DEFAULT_SIM: std::sync::LazyLock<SimConfig> = std::sync::LazyLock::new(SimConfig::default);
static DEFAULT_AWS: std::sync::LazyLock<AwsConfig> = std::sync::LazyLock::new(AwsConfig::default);

impl CloudConfig {
    /// The chosen provider and its settings (defaults when its sub-table is absent).
    pub fn kind(&self) -> ProviderKind<'_> {
        match self.provider {
            ProviderName::Aws => ProviderKind::Aws(self.aws.as_ref().unwrap_or(&DEFAULT_AWS)),
            ProviderName::Local => {
                ProviderKind::Local(self.local.as_ref().unwrap_or(&DEFAULT_LOCAL))
            }
            ProviderName::Sim => ProviderKind::Sim(self.sim.as_ref().unwrap_or(&DEFAULT_SIM)),
        }
    }

    /// Pure checks, with key paths.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let valid_prefix = !self.prefix.is_empty()
            && self.prefix.len() <= 40
            && self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_prefix {
            out.push(Invalid::new(
                "cloud.prefix",
                "must be 1 to 40 letters, digits, `-` or `_`",
            ));
        }
        out.extend(self.retry.validate("cloud.retry"));
        let unused = |name: &str, present: bool, out: &mut Vec<Invalid>| {
            if present {
                out.push(Invalid::new(
                    format!("cloud.{name}"),
                    format!(
                        "is set but provider is {:?}: remove it or set provider = \"{name}\"",
                        self.provider
                    ),
                ));
            }
        };
        match self.provider {
            ProviderName::Aws => {
                match &self.aws {
                    Some(aws) => out.extend(aws.validate("cloud.aws")),
                    None => out.push(Invalid::new(
                        "cloud.provider",
                        "provider = \"aws\" needs a [cloud.aws] table (region, launch_template or image_id)",
                    )),
                }
                unused("local", self.local.is_some(), &mut out);
                unused("sim", self.sim.is_some(), &mut out);
            }
            ProviderName::Local => {
                if let Some(l) = &self.local {
                    out.extend(l.validate("cloud.local"));
                }
                unused("aws", self.aws.is_some(), &mut out);
                unused("sim", self.sim.is_some(), &mut out);
            }
            ProviderName::Sim => {
                if let Some(s) = &self.sim {
                    out.extend(s.validate("cloud.sim"));
                }
                unused("aws", self.aws.is_some(), &mut out);
                unused("local", self.local.is_some(), &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CloudConfig {
        toml::from_str(text).unwrap()
    }

    fn paths(c: &CloudConfig) -> Vec<String> {
        c.validate().into_iter().map(|i| i.path).collect()
    }

    #[test]
    fn local_needs_no_table_and_defaults_apply() {
        let c = parse("provider = \"local\"\n");
        assert_eq!(c.prefix, "tend");
        assert!(paths(&c).is_empty());
        assert!(matches!(c.kind(), ProviderKind::Local(_)));
    }

    #[test]
    fn aws_needs_its_table_and_a_launch_source() {
        assert_eq!(paths(&parse("provider = \"aws\"\n")), ["cloud.provider"]);
        let c = parse("provider = \"aws\"\n[aws]\nregion = \"eu-west-1\"\n");
        assert_eq!(paths(&c), ["cloud.aws.launch_template"]);
        let c = parse(
            "provider = \"aws\"\n[aws]\nregion = \"eu-west-1\"\nlaunch_template = \"lt-1\"\n",
        );
        assert!(paths(&c).is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn bad_prefix_and_a_stray_table_are_reported() {
        let c = parse("provider = \"local\"\nprefix = \"a b\"\n[sim]\n");
        assert_eq!(paths(&c), ["cloud.prefix", "cloud.sim"]);
    }

    #[test]
    fn unknown_provider_is_a_parse_error() {
        assert!(toml::from_str::<CloudConfig>("provider = \"gcp\"\n").is_err());
    }
}
