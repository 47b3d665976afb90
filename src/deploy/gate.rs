//! The leadership gate: with `[cluster]`, a rollout asks [`Gate::may_act`] right before each host step (leaving
//! the balancer, each step, the health check, rejoining), so a replica that lost leadership (paused past its
//! lease, cut off from etcd) runs no further host step, even before the election notices. Without `[cluster]`
//! there is no gate and nothing changes.

use std::fmt::Write as _;

use super::report::RolloutSummary;
use crate::alert::Alert;
use crate::cluster::Fence;
use crate::core::{Event, Level};

/// May this replica still act on the hosts? `Err(why)` once it may not.
pub trait Gate: Send + Sync {
    /// Ok while deploys may go on; checked right before every host step.
    fn may_act(&self) -> Result<(), String>;
}

/// A leadership term: it may act until its lease deadline passes or the term ends (see [`Fence::check`]).
impl Gate for Fence {
    fn may_act(&self) -> Result<(), String> {
        self.check()
            .map_err(|e| format!("this replica no longer leads the cluster: {e}"))
    }
}

/// The `DeployInterrupted` alert: deploy `id` stopped part-way because this replica stopped leading; what ran,
/// and that nobody resumes it.
pub fn interrupted_alert(id: i64, summary: &RolloutSummary) -> Alert {
    let why = summary
        .first_failure()
        .map_or_else(|| "leadership lost".to_owned(), |(_, f)| f.reason.clone());
    let mut body = format!(
        "Deploy #{id} stopped part-way: {why}. No further host step ran from this replica.\n\n\
         The new leader does not resume it: check the hosts, then deploy again (push again or redeliver the \
         webhook).\n"
    );
    let left_out = summary.left_out();
    if !left_out.is_empty() {
        let _ = writeln!(body, "\nLeft out of the balancer: {}.", left_out.join(", "));
    }
    let _ = write!(body, "\n{}", summary.table());
    Alert::new(
        Event::DeployInterrupted,
        format!("#{id}"),
        Level::Error,
        format!("Deploy #{id} interrupted: this replica no longer leads the cluster"),
        body,
    )
}

#[cfg(test)]
pub mod testing {
    //! A gate that tests open and close, and one that closes after a number of checks.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Gate;

    /// Open for the first `open_for` checks, closed after (as a leader paused past its lease would be).
    #[derive(Debug, Default)]
    pub struct ClosingGate {
        /// How many checks pass.
        pub open_for: usize,
        /// Checks made so far.
        pub checks: AtomicUsize,
    }

    impl ClosingGate {
        /// Open for `n` checks.
        pub fn after(n: usize) -> ClosingGate {
            ClosingGate {
                open_for: n,
                checks: AtomicUsize::new(0),
            }
        }
    }

    impl Gate for ClosingGate {
        fn may_act(&self) -> Result<(), String> {
            let n = self.checks.fetch_add(1, Ordering::SeqCst);
            if n < self.open_for {
                Ok(())
            } else {
                Err("this replica no longer leads the cluster: leadership term ended".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::ClosingGate;
    use super::*;

    #[test]
    fn a_closing_gate_closes_for_good() {
        let g = ClosingGate::after(2);
        assert!(g.may_act().is_ok());
        assert!(g.may_act().is_ok());
        assert!(g.may_act().is_err());
        assert!(g.may_act().is_err());
    }
}
