//! [`SimError`]: what can stop `tend simulate` (a bad trace, policy, usage or output). A leaf of `sim/`.

use crate::cloud::sim::trace;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The trace could not be loaded.
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    /// A `--policy` argument is wrong.
    #[error("--policy {spec:?}: {problem}")]
    Policy {
        /// The argument.
        spec: String,
        /// What is wrong.
        problem: String,
    },
    /// A flag value out of range.
    #[error("{0}")]
    Usage(String),
    /// Writing the output or the SVG failed.
    #[error("cannot write {what}: {problem}")]
    Output {
        /// stdout or the SVG path.
        what: String,
        /// The error.
        problem: String,
    },
}
