//! The configuration file: the aggregate [`Config`] of every section, read with `${VAR}` interpolation and errors
//! that point at `FILE:LINE:COL`.
//!
//! Loading is pure (the file's text in, a [`Config`] or a list of [`ConfigError`]s out; the environment is
//! passed in as a lookup function) so that tests feed strings and `tend check-config` can report every
//! problem of a file at once instead of the first. Each component owns its section's struct (`StoreConfig` in
//! `store/`, `AlertConfig` in `alert/config.rs`, ...) and its `validate() -> Vec<Invalid>`; this module sits
//! above them all and holds only the aggregate; [`parse`] holds the TOML machinery.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::DeTable;

use crate::core::Invalid;

mod error;
pub mod parse;

pub use error::{ConfigError, ConfigErrors};

use parse::{explain, flattened_policy_error, interpolate_table, locate, remove_at, span_of};

/// The whole configuration file. Every section is optional; a part runs when its section is present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where tend keeps its state (SQLite).
    #[serde(default)]
    pub store: crate::store::StoreConfig,
    /// The status page, JSON API, `/metrics` and the deploy webhook.
    #[serde(default)]
    pub web: crate::web::WebConfig,
    /// Console logging and which log levels become alerts.
    #[serde(default)]
    pub log: crate::log::LogConfig,
    /// How alerts are grouped and which notifiers deliver them.
    #[serde(default)]
    pub alert: crate::alert::AlertConfig,
    /// Websites and ports to watch; the monitor runs when this section is present.
    pub monitor: Option<crate::monitor::MonitorConfig>,
    /// Rolling deploys over SSH (`tend deploy`, the CI webhook).
    pub deploy: Option<crate::deploy::DeployConfig>,
    /// `[cloud]`: where the fleet's instances come from.
    pub cloud: Option<crate::cloud::CloudConfig>,
    /// `[scale]`: the autoscaler (needs `[cloud]`).
    pub scale: Option<crate::scale::ScaleConfig>,
    /// `[cluster]`: run as one of several replicas sharing an etcd cluster (none: alone, state in SQLite).
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `[[maintenance]]`: windows of planned work during which the listed monitor targets raise no alert.
    #[serde(default)]
    pub maintenance: Vec<crate::monitor::maintenance::MaintenanceConfig>,
}

impl Config {
    /// Reads and parses a config file, taking `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: name.clone(),
                line: 1,
                col: 1,
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        Config::parse(&text, &name, &|var| std::env::var(var).ok())
    }

    /// Parses and validates config text. Pure: `env` answers `${VAR}` look-ups, `file` only names the source.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let at = |span: Range<usize>, message: String| locate(text, file, span.start, message);
        let mut doc = DeTable::parse(text).map_err(|e| {
            ConfigErrors(vec![at(
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
            )])
        })?;
        let mut errors = Vec::new();
        let mut unset = Vec::new();
        interpolate_table(doc.get_mut(), env, "", &mut |span, m| {
            errors.push(at(span.clone(), m));
            unset.push(span);
        });
        let mut removed: Vec<String> = Vec::new();
        for span in unset {
            removed.extend(remove_at(doc.get_mut(), &span));
        }
        for _ in 0..64 {
            let attempt = doc.clone();
            let result = match flattened_policy_error(doc.get_ref()) {
                Some(problem) => Err(problem),
                None => Config::deserialize(toml::de::Deserializer::from(attempt))
                    .map_err(|e| (e.span().unwrap_or(0..0), e.message().to_string())),
            };
            match result {
                Ok(config) => {
                    if errors.is_empty() {
                        let problems = config.validate();
                        if problems.is_empty() {
                            return Ok(config);
                        }
                        for p in problems {
                            let span = span_of(doc.get_ref(), &p.path).unwrap_or(0..0);
                            errors.push(at(span, format!("`{}`: {}", p.path, p.message)));
                        }
                    }
                    break;
                }
                Err((span, message)) => {
                    let message = explain(&message);
                    // A key we removed after reporting it may now be "missing": that is the same problem again.
                    let echo = message.starts_with("missing field")
                        && removed.iter().any(|k| message.contains(&format!("`{k}`")));
                    if !echo {
                        errors.push(at(span.clone(), message));
                    }
                    match remove_at(doc.get_mut(), &span) {
                        Some(key) => removed.push(key),
                        None => break,
                    }
                }
            }
        }
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        Err(ConfigErrors(errors))
    }

    /// Semantic checks across every section: the problems, each with its key path.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        out.extend(self.store.validate());
        out.extend(self.web.validate());
        out.extend(self.log.validate());
        out.extend(self.alert.validate());
        if let Some(m) = &self.monitor {
            out.extend(m.validate());
        }
        let targets = crate::monitor::config::target_names(self.monitor.as_ref());
        out.extend(crate::monitor::maintenance::validate(
            &self.maintenance,
            &targets,
        ));
        if let Some(d) = &self.deploy {
            out.extend(d.validate());
            let scale_balancer = self.scale.as_ref().and_then(|s| s.balancer.as_ref());
            if matches!(
                d.balancer,
                Some(crate::deploy::config::DeployBalancer::Scale)
            ) && scale_balancer.is_none()
            {
                out.push(Invalid::new(
                    "deploy.balancer",
                    "\"scale\" reuses [scale.balancer], which is not configured",
                ));
            }
        }
        if let Some(cloud) = &self.cloud {
            out.extend(cloud.validate());
        }
        if let Some(cluster) = &self.cluster {
            out.extend(cluster.validate());
        }
        if let Some(scale) = &self.scale {
            out.extend(scale.validate());
            if self.cloud.is_none() {
                out.push(Invalid::new(
                    "scale",
                    "needs a [cloud] section saying where instances come from",
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
