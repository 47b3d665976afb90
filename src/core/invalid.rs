//! [`Invalid`]: the one validation contract. Every config section's `validate(&self) -> Vec<Invalid>` returns
//! each problem with the dotted path of its key, so `tend check-config` reports them all at once.

/// A semantic problem found by a section's `validate()`: the dotted path of the offending key
/// (`scale.high`, `monitor.target[2].timeout`) and the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Invalid {
    /// Dotted key path; array elements as `[i]`.
    pub path: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl Invalid {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
