//! One scaling cycle as data: what was seen ([`CycleReport`]), decided and done ([`Outcome`]). The service makes
//! them; the status page, the CLI report and the store read them.

use std::time::SystemTime;

use super::policy::{Assessment, Decision};
use crate::cloud::Instance;

/// What the cycle did about its decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to do (a hold).
    Nothing,
    /// Done: the ids created or terminated.
    Done(Vec<String>),
    /// Dry run: what would have been done.
    DryRun(String),
    /// Failed part-way: what was done, and the error.
    Failed {
        /// Ids created or terminated before the failure.
        done: Vec<String>,
        /// The error.
        error: String,
    },
}

impl Outcome {
    /// The outcome in words ("done: i-1, i-2").
    pub fn as_text(&self) -> String {
        match self {
            Outcome::Nothing => "nothing to do".into(),
            Outcome::Done(ids) => format!("done: {}", ids.join(", ")),
            Outcome::DryRun(what) => format!("dry run: would {what}"),
            Outcome::Failed { done, error } if done.is_empty() => format!("failed: {error}"),
            Outcome::Failed { done, error } => {
                format!("failed after {}: {error}", done.join(", "))
            }
        }
    }
}

/// One cycle: what was seen, decided and done.
#[derive(Debug, Clone)]
pub struct CycleReport {
    /// When.
    pub at: SystemTime,
    /// The live instances with their load (`None` = no data).
    pub instances: Vec<(Instance, Option<f64>)>,
    /// The numbers behind the decision.
    pub assessment: Assessment,
    /// The decision.
    pub decision: Decision,
    /// What was done about it.
    pub outcome: Outcome,
    /// Whether this was a dry run.
    pub dry_run: bool,
}
