//! One host's part of a rollout, in order: leave the balancer (deregister and drain), run every step over the
//! host's open session, check health, rejoin the balancer only when healthy. A host whose connection failed is
//! never taken out; a host that fails after leaving stays out, and its report says so. With a leadership
//! [`Gate`], each of those host steps is preceded by a check, and a closed gate stops the host there.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::DeployConfig;
use super::gate::Gate;
use super::health::{HealthCheck, Unhealthy};
use super::plan::HostPlan;
use super::report::{
    FailedStage, HostFailure, HostReport, HostResult, LAST_LINES, Progress, RolloutSink,
};
use super::ssh::RemoteSession;
use crate::balancer::Balancer;

/// Timing knobs of a rollout (from `[deploy]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutOptions {
    /// Time one step may run.
    pub step_timeout: Duration,
    /// Time one health request may take.
    pub health_timeout: Duration,
    /// Extra health attempts after the first.
    pub health_retries: u32,
    /// Pause between health attempts.
    pub health_interval: Duration,
}

impl From<&DeployConfig> for RolloutOptions {
    fn from(c: &DeployConfig) -> Self {
        RolloutOptions {
            step_timeout: c.step_timeout,
            health_timeout: c.health_timeout,
            health_retries: c.health_retries,
            health_interval: c.health_interval,
        }
    }
}

/// What one host's work needs: its plan, its session (or why there is none), and the edges.
pub(super) struct HostWork<'a, S, H> {
    pub host: &'a HostPlan,
    pub options: &'a RolloutOptions,
    pub session: Result<&'a S, &'a str>,
    pub health: &'a H,
    pub balancer: Option<&'a dyn Balancer>,
    pub sink: &'a dyn RolloutSink,
    pub gate: Option<&'a dyn Gate>,
}

/// Ok when there is no gate or it is open; else the failure that stops the host before `next`.
fn allowed(gate: Option<&dyn Gate>, next: &str) -> Result<(), HostFailure> {
    match gate.map(|g| g.may_act()) {
        None | Some(Ok(())) => Ok(()),
        Some(Err(why)) => Err(HostFailure {
            stage: FailedStage::Interrupted {
                before: next.to_owned(),
            },
            exit_code: None,
            reason: why,
            last_lines: Vec::new(),
        }),
    }
}

/// How one pass over a host ended: the failure if any, and whether the host is in service now.
struct Pass {
    failure: Option<HostFailure>,
    in_service: bool,
}

impl<S: RemoteSession, H: HealthCheck> HostWork<'_, S, H> {
    fn name(&self) -> &str {
        &self.host.target.name
    }

    /// Deploys the host: drain, steps, health, rejoin.
    pub async fn deploy(&self) -> HostReport {
        let started = Instant::now();
        self.sink
            .progress(&Progress::HostStarted { host: self.name() });
        let pass = self.pass(&self.host.steps).await;
        HostReport {
            host: self.name().to_owned(),
            result: if pass.failure.is_some() {
                HostResult::Failed
            } else {
                HostResult::Succeeded
            },
            duration: started.elapsed(),
            failure: pass.failure,
            rollback: None,
            left_out: self.balancer.is_some() && !pass.in_service,
        }
    }

    /// Runs the rollback steps the same way (drained, health-checked, rejoined when healthy); whether the host is
    /// in service afterwards.
    pub async fn roll_back(&self, in_service: bool) -> (Result<(), HostFailure>, bool) {
        let pass = if in_service || self.balancer.is_none() {
            self.pass(&self.host.rollback_steps).await
        } else {
            self.after_drain(&self.host.rollback_steps).await
        };
        (pass.failure.map_or(Ok(()), Err), pass.in_service)
    }

    async fn pass(&self, steps: &[String]) -> Pass {
        let session = match self.session {
            Ok(s) => s,
            Err(reason) => return self.failed(FailedStage::Connect, reason.to_owned(), true),
        };
        if let Err(failure) = allowed(self.gate, "leaving the balancer") {
            return Pass {
                failure: Some(failure),
                in_service: true,
            };
        }
        if let Some(balancer) = self.balancer {
            let instance = self.host.target.as_instance();
            if let Err(e) = balancer.drain(&instance).await {
                // It may be half out: count it out, so the minimum in service is never overstated.
                return self.failed(FailedStage::Deregister, e.to_string(), false);
            }
            self.sink
                .progress(&Progress::Deregistered { host: self.name() });
        }
        self.steps_then_rejoin(session, steps).await
    }

    /// A host already out of the balancer: steps, health, rejoin.
    async fn after_drain(&self, steps: &[String]) -> Pass {
        match self.session {
            Ok(session) => self.steps_then_rejoin(session, steps).await,
            Err(reason) => self.failed(FailedStage::Connect, reason.to_owned(), false),
        }
    }

    async fn steps_then_rejoin(&self, session: &S, steps: &[String]) -> Pass {
        // A failure leaves a drained host out; without a balancer nothing was taken out.
        let failed = |failure| Pass {
            failure: Some(failure),
            in_service: self.balancer.is_none(),
        };
        let run = run_steps(
            session,
            self.name(),
            steps,
            self.options,
            self.sink,
            self.gate,
        );
        if let Err(failure) = run.await {
            return failed(failure);
        }
        if let Some(url) = &self.host.health_url {
            let checked = match allowed(self.gate, "the health check") {
                Ok(()) => {
                    check_health(self.name(), url, self.options, self.health, self.sink).await
                }
                Err(failure) => Err(failure),
            };
            if let Err(failure) = checked {
                return failed(failure);
            }
        }
        if self.balancer.is_some()
            && let Err(failure) = allowed(self.gate, "rejoining the balancer")
        {
            return failed(failure);
        }
        if let Some(balancer) = self.balancer {
            let instance = self.host.target.as_instance();
            if let Err(e) = balancer.register(&instance).await {
                return self.failed(FailedStage::Register, e.to_string(), false);
            }
            self.sink
                .progress(&Progress::Registered { host: self.name() });
        }
        Pass {
            failure: None,
            in_service: true,
        }
    }

    fn failed(&self, stage: FailedStage, reason: String, in_service: bool) -> Pass {
        Pass {
            failure: Some(HostFailure {
                stage,
                exit_code: None,
                reason,
                last_lines: Vec::new(),
            }),
            in_service: in_service || self.balancer.is_none(),
        }
    }
}

/// Runs `steps` in order, each under the step timeout, stopping at the first failure: in one remote session
/// when there are several and no gate (see `script.rs`), else one session each.
async fn run_steps<S: RemoteSession>(
    session: &S,
    name: &str,
    steps: &[String],
    options: &RolloutOptions,
    sink: &dyn RolloutSink,
    gate: Option<&dyn Gate>,
) -> Result<(), HostFailure> {
    let timeout = options.step_timeout;
    if gate.is_none() && steps.len() > 1 && session.runs_scripts() {
        return super::script::run_combined(session, name, steps, timeout, sink).await;
    }
    for (index, command) in steps.iter().enumerate() {
        allowed(gate, &format!("step {}", index + 1))?;
        sink.progress(&Progress::StepStarted {
            host: name,
            command,
        });
        let mut last: VecDeque<String> = VecDeque::with_capacity(LAST_LINES);
        let mut on_line = |line: &str| {
            sink.output(name, line);
            if last.len() == LAST_LINES {
                last.pop_front();
            }
            last.push_back(line.to_owned());
        };
        let outcome = tokio::time::timeout(timeout, session.run(command, &mut on_line)).await;
        let (exit_code, reason) = match outcome {
            Ok(Ok(Some(0))) => continue,
            Ok(Ok(Some(code))) => (Some(code), format!("exit code {code}")),
            Ok(Ok(None)) => (None, "killed by a signal".to_owned()),
            Ok(Err(e)) => (None, crate::core::chain(&e)),
            Err(_) => (
                None,
                format!("timed out after {}", crate::core::duration::exact(timeout)),
            ),
        };
        return Err(HostFailure {
            stage: FailedStage::Step {
                index,
                command: command.clone(),
            },
            exit_code,
            reason,
            last_lines: last.into(),
        });
    }
    Ok(())
}

/// GETs `url` until it answers 2xx, at most `1 + health_retries` times.
async fn check_health<H: HealthCheck>(
    name: &str,
    url: &str,
    options: &RolloutOptions,
    health: &H,
    sink: &dyn RolloutSink,
) -> Result<(), HostFailure> {
    let attempts = options.health_retries.saturating_add(1);
    let mut reason = String::new();
    for attempt in 1..=attempts {
        let result = match tokio::time::timeout(options.health_timeout, health.check(url)).await {
            Ok(r) => r,
            Err(_) => Err(Unhealthy {
                url: url.to_owned(),
                why: format!(
                    "timed out after {}",
                    crate::core::duration::exact(options.health_timeout)
                ),
            }),
        };
        sink.progress(&Progress::HealthChecked {
            host: name,
            attempt,
            result: &result,
        });
        match result {
            Ok(()) => return Ok(()),
            Err(why) => reason = why.to_string(),
        }
        if attempt < attempts {
            tokio::time::sleep(options.health_interval).await;
        }
    }
    Err(HostFailure {
        stage: FailedStage::Health {
            url: url.to_owned(),
        },
        exit_code: None,
        reason: format!("{reason} (after {attempts} attempt(s))"),
        last_lines: Vec::new(),
    })
}
