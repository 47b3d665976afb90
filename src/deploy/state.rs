//! The rollout state machine, pure: `RolloutState::next` says what to do next from which hosts are pending,
//! running, done or failed; `rollout.rs` only performs the actions and reports results back.

use super::plan::Plan;

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
    pub(super) max_failures: usize,
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
