//! `[scale]`: the policy's settings (high, low, min, max, interval, window, …), dry run and the balancer.

use std::time::Duration;

use serde::Deserialize;

use super::policy::PolicyConfig;
use crate::balancer::BalancerConfig;
use crate::core::Invalid;

/// `[scale]`: when to add and remove instances, and where new ones are registered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleConfig {
    /// Run the whole cycle on real readings, print and store the decision, but create and terminate
    /// nothing and leave the balancer alone (the seed's simulation mode).
    #[serde(default)]
    pub dry_run: bool,
    /// Longest time one provider or balancer call may take, its retries included.
    #[serde(default = "default_call_timeout", with = "crate::core::duration")]
    pub call_timeout: Duration,
    /// `[scale.balancer]`: where running instances are registered (none: no balancer).
    pub balancer: Option<BalancerConfig>,
    /// `[[scale.signal]]`: extra signals (Prometheus queries) with their own high/low; add if any says add,
    /// remove only if all allow it.
    #[serde(default)]
    pub signal: Vec<super::signal::SignalConfig>,
    /// The policy: `high`, `low`, `min`, `max`, `max_step`, `interval`, `window`, `boot_grace`, `predictive`,
    /// `overload_budget`, `prior_headroom`, `saturated`, `surge`, `memory`, `settle` (see [`PolicyConfig`]).
    #[serde(flatten)]
    pub policy: PolicyConfig,
}

/// The keys of `[scale]` that are not the policy's (the rest are [`PolicyConfig`]'s, flattened).
pub const OWN_KEYS: &[&str] = &["dry_run", "call_timeout", "balancer", "signal"];

fn default_call_timeout() -> Duration {
    Duration::from_secs(120)
}

impl Default for ScaleConfig {
    fn default() -> Self {
        ScaleConfig {
            dry_run: false,
            call_timeout: default_call_timeout(),
            balancer: None,
            signal: Vec::new(),
            policy: PolicyConfig::default(),
        }
    }
}

impl ScaleConfig {
    /// Pure checks, with key paths.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if let Err(e) = self.policy.validate() {
            use super::policy::PolicyConfigError as E;
            let path = match &e {
                E::Band { .. } => "scale.low".to_string(),
                E::Bounds { .. } => "scale.min".to_string(),
                E::Field { field, .. } => {
                    format!("scale.{}", field.split('/').next().unwrap_or(field))
                }
            };
            let message = e.to_string();
            let message = message
                .strip_prefix("scale: ")
                .unwrap_or(&message)
                .to_string();
            out.push(Invalid::new(path, message));
        }
        if self.call_timeout.is_zero() {
            out.push(Invalid::new("scale.call_timeout", "must be longer than 0s"));
        }
        if let Some(b) = &self.balancer {
            out.extend(b.validate("scale.balancer"));
        }
        for (i, s) in self.signal.iter().enumerate() {
            out.extend(s.validate(i));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn errors(text: &str) -> Vec<String> {
        match Config::parse(text, "t.toml", &|_| None) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn policy_fields_sit_in_scale_beside_dry_run_and_balancer() {
        let c = Config::parse(
            "[cloud]\nprovider = \"local\"\n[scale]\nhigh = 85\nlow = 70\nmin = 2\ninterval = \"10s\"\ndry_run = true\n[scale.balancer]\nkind = \"command\"\nregister = \"true\"\nderegister = \"true\"\n",
            "t.toml",
            &|_| None,
        )
        .unwrap();
        let s = c.scale.unwrap();
        assert!(s.dry_run);
        assert_eq!(s.policy.high, 85.0);
        assert_eq!(s.policy.min, 2);
        assert_eq!(s.policy.interval, Duration::from_secs(10));
        assert!(matches!(s.balancer, Some(BalancerConfig::Command(_))));
    }

    #[test]
    fn an_unknown_key_in_scale_is_an_error() {
        let e = errors("[cloud]\nprovider = \"local\"\n[scale]\nhihg = 85\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("hihg"), "{e:?}");
    }

    #[test]
    fn bad_band_points_at_scale_low() {
        let e = errors("[cloud]\nprovider = \"local\"\n[scale]\nhigh = 70\nlow = 80\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.toml:5:7: `scale.low`"), "{e:?}");
    }

    #[test]
    fn scale_needs_cloud() {
        let e = errors("[scale]\nhigh = 90\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("[cloud]"), "{e:?}");
    }
}
