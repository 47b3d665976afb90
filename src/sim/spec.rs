//! [`PolicySpec`]: a policy to simulate, by name with its knobs (`aws-simple:high=80,low=30`), parsed and built
//! into the simulator's policy. Uses only `error.rs` and `baselines.rs` of its siblings.

use super::baselines::{AwsSimple, AwsTargetTracking, Bounds, K8sHpa, Seed, SimPolicy, Tend};
use super::error::SimError;
use crate::scale::config::PolicyConfig;
use crate::scale::policy::Policy;

/// The policy names, in report order.
pub const POLICY_NAMES: [&str; 6] = [
    "tend",
    "seed",
    "aws-simple",
    "aws-target-tracking",
    "k8s-hpa",
    "oracle",
];

/// A parsed `NAME[:KNOB=VALUE,...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Policy name.
    pub name: String,
    /// Knobs in the given order.
    pub knobs: Vec<(String, String)>,
}

impl PolicySpec {
    /// Parses `NAME[:KNOB=VALUE,...]`.
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let err = |problem: String| SimError::Policy {
            spec: text.into(),
            problem,
        };
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        if !POLICY_NAMES.contains(&name) {
            return Err(err(format!(
                "unknown policy {name:?} (known: {})",
                POLICY_NAMES.join(", ")
            )));
        }
        let mut knobs = Vec::new();
        for kv in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| err(format!("{kv:?} is not KNOB=VALUE")))?;
            knobs.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(PolicySpec {
            name: name.into(),
            knobs,
        })
    }

    /// The `KNOB=VALUE,...` string (`defaults` when empty).
    pub fn setting(&self) -> String {
        if self.knobs.is_empty() {
            return "defaults".into();
        }
        self.knobs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn knob(&self, name: &str, default: f64, known: &[&str]) -> Result<f64, SimError> {
        for (k, _) in &self.knobs {
            if !known.contains(&k.as_str()) {
                return Err(SimError::Policy {
                    spec: format!("{}:{}", self.name, self.setting()),
                    problem: format!("unknown knob {k:?} (known: {})", known.join(", ")),
                });
            }
        }
        match self.knobs.iter().rev().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| SimError::Policy {
                    spec: format!("{}:{}", self.name, self.setting()),
                    problem: format!("{name}={v} is not a positive number"),
                }),
        }
    }

    /// Builds the policy (`None` for `oracle`, which is computed, not simulated).
    pub fn build(&self, bounds: Bounds) -> Result<Option<Box<dyn SimPolicy + Send>>, SimError> {
        Ok(Some(match self.name.as_str() {
            "oracle" => return Ok(None),
            "tend" => Box::new(Tend {
                config: self.tend_config(bounds)?,
                policy: Policy::new(),
            }),
            "seed" => {
                let known = ["high", "low"];
                Box::new(Seed {
                    high: self.knob("high", 90.0, &known)?,
                    low: self.knob("low", 80.0, &known)?,
                    bounds,
                })
            }
            "aws-simple" => {
                let known = ["high", "low"];
                Box::new(AwsSimple::new(
                    self.knob("high", 90.0, &known)?,
                    self.knob("low", 40.0, &known)?,
                    bounds,
                ))
            }
            "aws-target-tracking" => Box::new(AwsTargetTracking::new(
                self.knob("target", 50.0, &["target"])?,
                bounds,
            )),
            _ => Box::new(K8sHpa::new(self.knob("target", 50.0, &["target"])?, bounds)),
        }))
    }

    /// tend's config: the defaults with the scenario's bounds, then any knob as a `[scale]` field.
    fn tend_config(&self, bounds: Bounds) -> Result<PolicyConfig, SimError> {
        let mut text = format!("min = {}\nmax = {}\n", bounds.min, bounds.max);
        for (k, v) in &self.knobs {
            let quoted = v.parse::<f64>().is_err() && v != "true" && v != "false";
            text += &if quoted {
                format!("{k} = {v:?}\n")
            } else {
                format!("{k} = {v}\n")
            };
        }
        let err = |problem: String| SimError::Policy {
            spec: format!("tend:{}", self.setting()),
            problem,
        };
        let config: PolicyConfig =
            toml::from_str(&text).map_err(|e| err(e.message().to_string()))?;
        if let Some(problem) = config.validate("tend").first() {
            return Err(err(problem.message.clone()));
        }
        Ok(config)
    }
}
