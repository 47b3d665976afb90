//! The deploy plan (hosts → batches, rendered commands) and the rollout state machine.
//!
//! Both are pure: `build_plan` turns the config, the hosts and the commit into exact commands, and
//! `RolloutState::next` says what to do next from which hosts are pending, running, done or failed.
//! `rollout.rs` only performs the actions and reports results back.

use std::fmt;

use super::config::{DeployConfig, HEALTH_PLACEHOLDERS, Hosts, STEP_PLACEHOLDERS};
use crate::core::template::{self, Template, TemplateError};

/// One host to deploy to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Name shown in output and substituted for `{name}` (the instance name for the fleet).
    pub name: String,
    /// Hostname or IP address SSH connects to (IPv6 without brackets).
    pub address: String,
    /// SSH port, if not the default from ssh_config.
    pub port: Option<u16>,
}

impl Target {
    /// Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address (a config `hosts` entry).
    pub fn parse(entry: &str) -> Result<Target, String> {
        let bad = |why: &str| format!("host {entry:?}: {why}");
        let (address, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            match after {
                "" => (addr, None),
                _ => (
                    addr,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected ':' after ']'"))?,
                    ),
                ),
            }
        } else if entry.matches(':').count() > 1 {
            (entry, None)
        } else {
            match entry.split_once(':') {
                Some((a, p)) => (a, Some(p)),
                None => (entry, None),
            }
        };
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("port must be 1-65535"))?,
            ),
            None => None,
        };
        check_address(address).map_err(|why| bad(&why))?;
        let mut target = Target {
            name: String::new(),
            address: address.to_owned(),
            port,
        };
        target.name = target.host();
        Ok(target)
    }

    /// A fleet instance: its name and its IP address (SSH port from ssh_config).
    pub fn fleet(name: impl Into<String>, address: impl Into<String>) -> Target {
        Target {
            name: name.into(),
            address: address.into(),
            port: None,
        }
    }

    /// `address` or `address:port` (`[v6]:port`): what `{host}` becomes.
    pub fn host(&self) -> String {
        match (self.port, self.address.contains(':')) {
            (None, _) => self.address.clone(),
            (Some(p), false) => format!("{}:{p}", self.address),
            (Some(p), true) => format!("[{}]:{p}", self.address),
        }
    }

    /// The address as it goes into a URL (`[v6]` bracketed).
    fn url_address(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        }
    }
}

/// An address must not be able to smuggle ssh options or shell syntax.
fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("empty address".into());
    }
    if address.starts_with('-') {
        return Err("an address cannot start with '-'".into());
    }
    if !address
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err("only letters, digits, '.', '-', '_' and ':' are allowed".into());
    }
    Ok(())
}

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
                check_address(&t.address).map_err(|why| PlanError::BadAddress {
                    name: t.name.clone(),
                    address: t.address.clone(),
                    why,
                })?;
            }
            fleet.to_vec()
        }
    };
    if targets.is_empty() {
        return Err(PlanError::NoHosts);
    }
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
    Ok(Plan {
        hosts,
        batches,
        max_failures: config.max_failures,
        context: context.clone(),
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

/// Where one host is in the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStatus {
    /// Not started.
    Pending,
    /// Steps or health check in progress.
    Running,
    /// All steps passed and the host is healthy.
    Succeeded,
    /// A step, the connection or the health check failed.
    Failed,
}

/// Where one host's rollback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackStatus {
    /// Not run (and maybe never needed).
    NotRun,
    /// In progress.
    Running,
    /// Every rollback step passed.
    Done,
    /// A rollback step failed.
    Failed,
}

/// How the rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every host deployed (or no more failed than `max_failures`).
    Succeeded,
    /// More than `max_failures` hosts failed.
    Failed,
    /// Stopped from outside (shutdown) before every host was done.
    Cancelled,
}

/// What the executor must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start deploying these hosts (in parallel), then report each with `finished`.
    Start(Vec<usize>),
    /// Run the rollback steps on these hosts, then report each with `rollback_finished`.
    RollBack(Vec<usize>),
    /// Hosts are running: wait for one to report.
    Wait,
    /// Nothing left to do.
    Finish(Verdict),
}

/// The rollout's state: the only input of `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutState {
    batches: Vec<Vec<usize>>,
    hosts: Vec<HostStatus>,
    rollback: Vec<RollbackStatus>,
    max_failures: usize,
    has_rollback: bool,
    cancelled: bool,
}

impl RolloutState {
    /// The start state for `plan`.
    pub fn new(plan: &Plan) -> Self {
        let has_rollback = plan.hosts.iter().any(|h| !h.rollback_steps.is_empty());
        Self::from_batches(
            plan.batches.clone(),
            plan.hosts.len(),
            plan.max_failures,
            has_rollback,
        )
    }

    /// A start state from batches of host indices `0..hosts`.
    pub fn from_batches(
        batches: Vec<Vec<usize>>,
        hosts: usize,
        max_failures: usize,
        has_rollback: bool,
    ) -> Self {
        RolloutState {
            batches,
            hosts: vec![HostStatus::Pending; hosts],
            rollback: vec![RollbackStatus::NotRun; hosts],
            max_failures,
            has_rollback,
            cancelled: false,
        }
    }

    /// Each host's status.
    pub fn hosts(&self) -> &[HostStatus] {
        &self.hosts
    }

    /// Each host's rollback status.
    pub fn rollbacks(&self) -> &[RollbackStatus] {
        &self.rollback
    }

    /// Number of failed hosts so far.
    pub fn failures(&self) -> usize {
        self.hosts
            .iter()
            .filter(|s| **s == HostStatus::Failed)
            .count()
    }

    /// The executor started these hosts.
    pub fn started(&mut self, ids: &[usize]) {
        for &i in ids {
            self.hosts[i] = HostStatus::Running;
        }
    }

    /// Host `i` finished its steps and health check (`ok`) or failed.
    pub fn finished(&mut self, i: usize, ok: bool) {
        self.hosts[i] = if ok {
            HostStatus::Succeeded
        } else {
            HostStatus::Failed
        };
    }

    /// The executor started rolling these hosts back.
    pub fn rollback_started(&mut self, ids: &[usize]) {
        for &i in ids {
            self.rollback[i] = RollbackStatus::Running;
        }
    }

    /// Host `i`'s rollback finished.
    pub fn rollback_finished(&mut self, i: usize, ok: bool) {
        self.rollback[i] = if ok {
            RollbackStatus::Done
        } else {
            RollbackStatus::Failed
        };
    }

    /// Stop starting hosts (shutdown); running ones finish.
    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// The next action: a pure function of the state.
    pub fn next(&self) -> Action {
        let busy = self.hosts.contains(&HostStatus::Running)
            || self.rollback.contains(&RollbackStatus::Running);
        if busy {
            return Action::Wait;
        }
        let failed = self.failures() > self.max_failures;
        if failed {
            if self.has_rollback {
                let to_roll_back: Vec<usize> = self
                    .failed_batch()
                    .iter()
                    .copied()
                    .filter(|&i| {
                        self.hosts[i] != HostStatus::Pending
                            && self.rollback[i] == RollbackStatus::NotRun
                    })
                    .collect();
                if !to_roll_back.is_empty() {
                    return Action::RollBack(to_roll_back);
                }
            }
            return Action::Finish(Verdict::Failed);
        }
        if self.cancelled {
            let all_done = self.hosts.iter().all(|s| *s != HostStatus::Pending);
            return Action::Finish(if all_done {
                Verdict::Succeeded
            } else {
                Verdict::Cancelled
            });
        }
        match self
            .batches
            .iter()
            .find(|b| b.iter().any(|&i| self.hosts[i] == HostStatus::Pending))
        {
            Some(batch) => Action::Start(
                batch
                    .iter()
                    .copied()
                    .filter(|&i| self.hosts[i] == HostStatus::Pending)
                    .collect(),
            ),
            None => Action::Finish(Verdict::Succeeded),
        }
    }

    /// The last batch that started: the one in which the rollout failed.
    fn failed_batch(&self) -> &[usize] {
        self.batches
            .iter()
            .rev()
            .find(|b| b.iter().any(|&i| self.hosts[i] != HostStatus::Pending))
            .map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

/// Re-exported so callers can quote values the same way the plan does.
pub use template::shell_quote;
