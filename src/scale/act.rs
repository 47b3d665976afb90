//! What the orchestrator does about a decision: create instances (registering them with the balancer once
//! they run), or deregister one and then terminate it; every action and failure is alerted.

use std::collections::HashSet;
use std::time::SystemTime;

use super::cycle::Outcome;
use super::names::new_name;
use super::policy::Decision;
use super::service::Orchestrator;
use crate::alert::Alert;
use crate::cloud::Instance;
use crate::core::Event::{ScaledDown, ScaledUp};
use crate::core::Level;

impl Orchestrator {
    /// Registers running instances not registered yet by this process (registering is idempotent, so after a
    /// restart every running one is registered once more).
    pub(super) async fn register_running(&mut self, instances: &[(Instance, Option<f64>)]) {
        let Some(balancer) = self.balancer.clone() else {
            return;
        };
        if self.config.dry_run {
            return;
        }
        for (i, _) in instances {
            if i.state != crate::cloud::State::Running || self.registered.contains(&i.id) {
                continue;
            }
            if self.may_act().is_err() {
                return;
            }
            match self.call("register", balancer.register(i)).await {
                Ok(()) => {
                    crate::info!(instance = %i.id, name = %i.name, "Registered with the balancer");
                    self.registered.insert(i.id.clone());
                }
                Err(e) => self.fail(&format!("registering {} with the balancer", i.id), &e),
            }
        }
    }

    pub(super) async fn act(
        &mut self,
        decision: &Decision,
        instances: &[(Instance, Option<f64>)],
        now: SystemTime,
    ) -> Outcome {
        let n = instances.len();
        match decision {
            Decision::Hold { .. } => Outcome::Nothing,
            Decision::Add { count, .. } if self.config.dry_run => {
                Outcome::DryRun(format!("add {count}"))
            }
            Decision::Remove { id, .. } if self.config.dry_run => {
                Outcome::DryRun(format!("remove {id}"))
            }
            Decision::Add { count, reason } => {
                let mut taken: HashSet<String> =
                    instances.iter().map(|(i, _)| i.name.clone()).collect();
                let mut done = Vec::new();
                for _ in 0..*count {
                    if let Err(e) = self.may_act() {
                        self.alert_added(n, &done, reason);
                        return Outcome::Failed {
                            done,
                            error: e.to_string(),
                        };
                    }
                    let name = new_name(&self.prefix, now, &taken);
                    taken.insert(name.clone());
                    match self
                        .call("create", self.provider.create(&name, &name))
                        .await
                    {
                        Ok(created) => {
                            self.metrics.added.inc();
                            crate::notice!(instance = %created.id, %name, "Created an instance");
                            if created.state == crate::cloud::State::Running {
                                self.register_running(&[(created.clone(), None)]).await;
                            }
                            done.push(created.id);
                        }
                        Err(e) => {
                            self.fail(&format!("creating {name}"), &e);
                            self.alert_added(n, &done, reason);
                            return Outcome::Failed {
                                done,
                                error: e.to_string(),
                            };
                        }
                    }
                }
                self.alert_added(n, &done, reason);
                Outcome::Done(done)
            }
            Decision::Remove { id, reason } => {
                if let Err(e) = self.may_act() {
                    return Outcome::Failed {
                        done: vec![],
                        error: e.to_string(),
                    };
                }
                let Some((victim, _)) = instances.iter().find(|(i, _)| &i.id == id) else {
                    return Outcome::Failed {
                        done: vec![],
                        error: format!("{id} is not in the fleet"),
                    };
                };
                if let Some(balancer) = self.balancer.clone() {
                    if let Err(e) = self.call("deregister", balancer.deregister(victim)).await {
                        self.fail(&format!("deregistering {id} (left running)"), &e);
                        return Outcome::Failed {
                            done: vec![],
                            error: e.to_string(),
                        };
                    }
                    self.registered.remove(id);
                }
                if let Err(e) = self.may_act() {
                    return Outcome::Failed {
                        done: vec![],
                        error: e.to_string(),
                    };
                }
                if let Err(e) = self.call("terminate", self.provider.terminate(id)).await {
                    self.fail(&format!("terminating {id}"), &e);
                    return Outcome::Failed {
                        done: vec![],
                        error: e.to_string(),
                    };
                }
                self.metrics.removed.inc();
                crate::notice!(instance = %id, name = %victim.name, "Terminated an instance");
                self.alerter.raise(Alert::new(
                    ScaledDown,
                    &self.prefix,
                    Level::Notice,
                    format!("Scaled {} down: {n} → {}", self.prefix, n - 1),
                    format!("Terminated {id} ({}).\n\nWhy: {reason}", victim.name),
                ));
                Outcome::Done(vec![id.clone()])
            }
        }
    }

    fn alert_added(&self, n: usize, done: &[String], reason: &str) {
        if done.is_empty() {
            return;
        }
        self.alerter.raise(Alert::new(
            ScaledUp,
            &self.prefix,
            Level::Notice,
            format!("Scaled {} up: {n} → {}", self.prefix, n + done.len()),
            format!("Created {}.\n\nWhy: {reason}", done.join(", ")),
        ));
    }
}
