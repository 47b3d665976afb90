//! The deploy plan (hosts → batches, rendered commands), pure: `build_plan` turns the config, the hosts and
//! the commit into exact commands; `state.rs` then says what to do next, and `rollout.rs` does it.

use std::fmt;

use super::config::{DeployConfig, HEALTH_PLACEHOLDERS, Hosts, STEP_PLACEHOLDERS};
use super::target::Target;
use crate::core::template::{Template, TemplateError};

/// What this rollout deploys: substituted for `{commit}` and `{branch}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployContext {
    /// The commit (`--commit SHA`, or the webhook's `after`).
    pub commit: Option<String>,
    /// The branch (the webhook's branch).
    pub branch: Option<String>,
}

/// One host's part of the plan: every command exactly as it will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    /// The host.
    pub target: Target,
    /// Rendered `steps`.
    pub steps: Vec<String>,
    /// Rendered `rollback_steps` (run only if this host's batch fails the rollout).
    pub rollback_steps: Vec<String>,
    /// Rendered `health_url`.
    pub health_url: Option<String>,
}

/// The whole rollout, decided before anything runs; printed as is by `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every host, in rollout order.
    pub hosts: Vec<HostPlan>,
    /// Indices into `hosts`, one inner list per batch, run one batch after another.
    pub batches: Vec<Vec<usize>>,
    /// Failed hosts tolerated before the rollout stops.
    pub max_failures: usize,
    /// What is being deployed.
    pub context: DeployContext,
    /// Each host leaves the balancer while it changes (`[deploy] balancer` is set).
    pub drain: bool,
    /// Hosts that stay in service at every moment (0 without a balancer).
    pub min_in_service: usize,
    /// Every host the balancer serves from: the plan's hosts and those `--only` left out (which stay in).
    pub fleet_size: usize,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The fleet (or the list) has no hosts.
    #[error("no hosts to deploy to (hosts = \"fleet\" and the fleet is empty)")]
    NoHosts,
    /// `--only` named no known host.
    #[error("--only {only}: no such host (hosts: {known})")]
    OnlyMatchesNothing {
        /// The filter.
        only: String,
        /// The hosts there are.
        known: String,
    },
    /// A fleet instance's address is unusable.
    #[error("host {name}: bad address {address:?}: {why}")]
    BadAddress {
        /// The instance.
        name: String,
        /// Its address.
        address: String,
        /// The rule it breaks.
        why: String,
    },
    /// `min_in_service` leaves no host free to leave the balancer.
    #[error(
        "deploy.min_in_service = {min} keeps every host in service ({hosts} host(s)): no host could be deployed"
    )]
    NoRoomToDrain {
        /// The minimum.
        min: usize,
        /// The hosts there are.
        hosts: usize,
    },
    /// A command or URL could not be rendered.
    #[error("{field}: {source}")]
    Template {
        /// `deploy.steps[1]`, `deploy.health_url`, ...
        field: String,
        /// What went wrong.
        #[source]
        source: TemplateError,
    },
}

/// Builds the plan: picks the hosts (`fleet` is used when `hosts = "fleet"`), applies `--only`, cuts
/// batches and renders every command.
pub fn build_plan(
    config: &DeployConfig,
    fleet: &[Target],
    context: &DeployContext,
    only: Option<&str>,
) -> Result<Plan, PlanError> {
    let mut targets: Vec<Target> = match &config.hosts {
        Hosts::List(list) => list.clone(),
        Hosts::Fleet => {
            for t in fleet {
                if let Some(why) = super::target::address_problem(&t.address) {
                    return Err(PlanError::BadAddress {
                        name: t.name.clone(),
                        address: t.address.clone(),
                        why: why.to_string(),
                    });
                }
            }
            fleet.to_vec()
        }
    };
    if targets.is_empty() {
        return Err(PlanError::NoHosts);
    }
    let fleet_size = targets.len();
    if let Some(only) = only {
        let known = targets
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
            .join(", ");
        targets.retain(|t| t.name == only || t.host() == only || t.address == only);
        if targets.is_empty() {
            return Err(PlanError::OnlyMatchesNothing {
                only: only.to_owned(),
                known,
            });
        }
    }
    let steps = parse_all("deploy.steps", &config.steps)?;
    let rollback = parse_all("deploy.rollback_steps", &config.rollback_steps)?;
    let health =
        match &config.health_url {
            Some(url) => Some(Template::parse(url, HEALTH_PLACEHOLDERS, false).map_err(
                |source| PlanError::Template {
                    field: "deploy.health_url".into(),
                    source,
                },
            )?),
            None => None,
        };
    let hosts = targets
        .into_iter()
        .map(|target| {
            let host = target.host();
            let url_address = target.url_address();
            let value = |name: &str| -> Option<&str> {
                match name {
                    "host" => Some(&host),
                    "name" => Some(&target.name),
                    "address" => Some(&url_address),
                    "commit" => context.commit.as_deref(),
                    "branch" => context.branch.as_deref(),
                    _ => None,
                }
            };
            Ok(HostPlan {
                steps: render_all("deploy.steps", &steps, value)?,
                rollback_steps: render_all("deploy.rollback_steps", &rollback, value)?,
                health_url: match &health {
                    Some(t) => Some(t.render(value).map_err(|source| PlanError::Template {
                        field: "deploy.health_url".into(),
                        source,
                    })?),
                    None => None,
                },
                target: target.clone(),
            })
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let size = config.batch.size(hosts.len());
    let batches = (0..hosts.len())
        .collect::<Vec<_>>()
        .chunks(size)
        .map(<[usize]>::to_vec)
        .collect();
    let drain = config.balancer.is_some();
    let min_in_service = match (drain, config.min_in_service) {
        (false, _) => 0,
        (true, Some(min)) => min,
        (true, None) => fleet_size.saturating_sub(size),
    };
    if drain && min_in_service >= fleet_size {
        return Err(PlanError::NoRoomToDrain {
            min: min_in_service,
            hosts: fleet_size,
        });
    }
    Ok(Plan {
        hosts,
        batches,
        max_failures: config.max_failures,
        context: context.clone(),
        drain,
        min_in_service,
        fleet_size,
    })
}

fn parse_all(field: &str, commands: &[String]) -> Result<Vec<Template>, PlanError> {
    commands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Template::parse(c, STEP_PLACEHOLDERS, true).map_err(|source| PlanError::Template {
                field: format!("{field}[{i}]"),
                source,
            })
        })
        .collect()
}

fn render_all<'v>(
    field: &str,
    templates: &[Template],
    value: impl Fn(&str) -> Option<&'v str> + Copy,
) -> Result<Vec<String>, PlanError> {
    templates
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.render(value).map_err(|source| PlanError::Template {
                field: format!("{field}[{i}]"),
                source,
            })
        })
        .collect()
}

/// The dry-run listing: hosts, batches and every command.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        writeln!(
            f,
            "Deploy plan: {} host(s) in {} batch(es); commit {}, branch {}; stop after {} failure(s)",
            self.hosts.len(),
            self.batches.len(),
            show(&self.context.commit),
            show(&self.context.branch),
            self.max_failures + 1,
        )?;
        if self.drain {
            writeln!(
                f,
                "Each host leaves the balancer while it changes; at least {} of {} host(s) stay in service",
                self.min_in_service, self.fleet_size
            )?;
        }
        for (b, batch) in self.batches.iter().enumerate() {
            writeln!(f, "Batch {} ({} host(s), in parallel):", b + 1, batch.len())?;
            for &i in batch {
                let h = &self.hosts[i];
                writeln!(f, "  {} (ssh {})", h.target.name, h.target.host())?;
                for step in &h.steps {
                    writeln!(f, "    $ {step}")?;
                }
                if let Some(url) = &h.health_url {
                    writeln!(f, "    health: GET {url}")?;
                }
                for step in &h.rollback_steps {
                    writeln!(f, "    rollback $ {step}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
