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
    /// Stopped because taking one more host out would leave fewer than `min_in_service` in service (failed
    /// hosts stay out of the balancer).
    Blocked,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Succeeded => "succeeded",
            Verdict::Failed => "failed",
            Verdict::Cancelled => "cancelled",
            Verdict::Blocked => "blocked",
        })
    }
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
    /// Whether each host is in the balancer (serving); all are at the start.
    in_service: Vec<bool>,
    /// Hosts of the balancer outside this rollout (`--only`): always in service.
    others: usize,
    min_in_service: usize,
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
        .keeping(
            plan.min_in_service,
            plan.fleet_size.saturating_sub(plan.hosts.len()),
        )
    }

    /// Keeps at least `min` hosts in service, counting `others` hosts outside the rollout that never leave.
    pub fn keeping(mut self, min: usize, others: usize) -> Self {
        self.min_in_service = min;
        self.others = others;
        self
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
            in_service: vec![true; hosts],
            others: 0,
            min_in_service: 0,
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

    /// Hosts in service now, those outside the rollout included.
    pub fn in_service(&self) -> usize {
        self.others + self.in_service.iter().filter(|s| **s).count()
    }

    /// The batch host `i` belongs to (0-based).
    pub fn batch_of(&self, i: usize) -> Option<usize> {
        self.batches.iter().position(|b| b.contains(&i))
    }

    /// The executor started these hosts: each leaves the balancer (if it has one) first.
    pub fn started(&mut self, ids: &[usize]) {
        for &i in ids {
            self.hosts[i] = HostStatus::Running;
            self.in_service[i] = false;
        }
    }

    /// Host `i` finished its steps and health check (`ok`) or failed; `in_service`: it is back in the balancer
    /// (or was never taken out).
    pub fn finished(&mut self, i: usize, ok: bool, in_service: bool) {
        self.hosts[i] = if ok {
            HostStatus::Succeeded
        } else {
            HostStatus::Failed
        };
        self.in_service[i] = in_service;
    }

    /// The executor started rolling these hosts back (those in service leave the balancer first).
    pub fn rollback_started(&mut self, ids: &[usize]) {
        for &i in ids {
            self.rollback[i] = RollbackStatus::Running;
            self.in_service[i] = false;
        }
    }

    /// Host `i`'s rollback finished; `in_service` as for [`RolloutState::finished`].
    pub fn rollback_finished(&mut self, i: usize, ok: bool, in_service: bool) {
        self.rollback[i] = if ok {
            RollbackStatus::Done
        } else {
            RollbackStatus::Failed
        };
        self.in_service[i] = in_service;
    }

    /// Stop starting hosts (shutdown); running ones finish.
    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// How many more hosts may leave the balancer now without going below `min_in_service`.
    fn room(&self) -> usize {
        self.in_service().saturating_sub(self.min_in_service)
    }

    /// The next action: a pure function of the state. Batches run one after another; inside a batch, hosts
    /// start as far as `min_in_service` allows (the rest wait for one to come back).
    pub fn next(&self) -> Action {
        let busy = self.hosts.contains(&HostStatus::Running)
            || self.rollback.contains(&RollbackStatus::Running);
        if self.failures() > self.max_failures {
            if busy {
                return Action::Wait;
            }
            let to_roll_back = self.rollback_candidates();
            if !to_roll_back.is_empty() {
                return Action::RollBack(to_roll_back);
            }
            return Action::Finish(Verdict::Failed);
        }
        if self.cancelled {
            if busy {
                return Action::Wait;
            }
            let all_done = self.hosts.iter().all(|s| *s != HostStatus::Pending);
            return Action::Finish(if all_done {
                Verdict::Succeeded
            } else {
                Verdict::Cancelled
            });
        }
        let Some(batch) = self
            .batches
            .iter()
            .find(|b| b.iter().any(|&i| self.hosts[i] == HostStatus::Pending))
        else {
            return if busy {
                Action::Wait
            } else {
                Action::Finish(Verdict::Succeeded)
            };
        };
        let earlier_running = (0..self.hosts.len())
            .any(|i| self.hosts[i] == HostStatus::Running && !batch.contains(&i));
        if earlier_running {
            return Action::Wait;
        }
        let start: Vec<usize> = batch
            .iter()
            .copied()
            .filter(|&i| self.hosts[i] == HostStatus::Pending)
            .take(self.room())
            .collect();
        match (start.is_empty(), busy) {
            (false, _) => Action::Start(start),
            (true, true) => Action::Wait,
            (true, false) => Action::Finish(Verdict::Blocked),
        }
    }

    /// Hosts of the failed batch to roll back now: those already out of service, and as many in service as
    /// `min_in_service` lets leave.
    fn rollback_candidates(&self) -> Vec<usize> {
        if !self.has_rollback {
            return Vec::new();
        }
        let mut room = self.room();
        let mut out = Vec::new();
        for &i in self.failed_batch() {
            if self.hosts[i] == HostStatus::Pending || self.rollback[i] != RollbackStatus::NotRun {
                continue;
            }
            if !self.in_service[i] {
                out.push(i);
            } else if room > 0 {
                room -= 1;
                out.push(i);
            }
        }
        out
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
