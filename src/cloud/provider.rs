//! The provider contract every cloud implements: [`Provider`] (list, create, terminate, load, history), the
//! [`Instance`]s and [`Series`] it returns and the [`CloudError`]s it fails with. A leaf of `cloud/`: `aws`,
//! `local`, `sim` and the fake in `testing.rs` implement it; it imports none of them.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// An instance's lifecycle state, as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Created, not running yet.
    Pending,
    /// Running (its service may still be booting).
    Running,
    /// Being stopped or terminated.
    Stopping,
    /// Stopped (EC2 "stopped"): not serving, still exists.
    Stopped,
    /// Gone.
    Terminated,
}

impl State {
    /// The lower-case name (`running`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Terminated => "terminated",
        }
    }

    /// Pending or running: part of the fleet's capacity.
    pub fn is_live(self) -> bool {
        matches!(self, State::Pending | State::Running)
    }
}

/// One instance with tend's prefix.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Instance {
    /// The provider's id (`i-0abc…`, `local-…`, `sim-000001`).
    pub id: String,
    /// The name (tend's prefix plus a unique suffix).
    pub name: String,
    /// Lifecycle state.
    pub state: State,
    /// When it was launched.
    #[serde(serialize_with = "crate::core::time::serialize")]
    pub launched_at: SystemTime,
    /// Private address, when it has one.
    pub private_address: Option<String>,
    /// Public address, when it has one.
    pub public_address: Option<String>,
    /// The port its service listens on, when the provider assigns one (the `local` provider does).
    pub port: Option<u16>,
}

impl Instance {
    /// The address to reach it at: private first, then public.
    pub fn address(&self) -> Option<&str> {
        self.private_address
            .as_deref()
            .or(self.public_address.as_deref())
    }
}

/// A provider's failure. The text names the operation, the provider and, for AWS, the error code and message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    /// Worth retrying: throttling, a 5xx answer, a timeout, a dropped connection.
    #[error("{op} failed (transient, after {attempts} attempt(s)): {message}")]
    Transient {
        /// The operation (`ec2:RunInstances`, `local:spawn`).
        op: String,
        /// The error code and message.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// Retrying will not help: bad config, credentials, permissions, quota, an unknown id.
    #[error("{op} failed: {message}")]
    Permanent {
        /// The operation.
        op: String,
        /// The error code and message.
        message: String,
    },
}

impl CloudError {
    /// A transient error of one attempt.
    pub fn transient(op: impl Into<String>, message: impl Into<String>) -> CloudError {
        CloudError::Transient {
            op: op.into(),
            message: message.into(),
            attempts: 1,
        }
    }

    /// A permanent error.
    pub fn permanent(op: impl Into<String>, message: impl Into<String>) -> CloudError {
        CloudError::Permanent {
            op: op.into(),
            message: message.into(),
        }
    }

    /// True for [`CloudError::Transient`].
    pub fn is_transient(&self) -> bool {
        matches!(self, CloudError::Transient { .. })
    }
}

/// One instance's load history: (time, load in percent) at the provider's resolution, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// The instance.
    pub id: String,
    /// Its data points.
    pub points: Vec<(SystemTime, f64)>,
}

/// A boxed future of a provider call (keeps [`Provider`] usable as `dyn Provider`).
pub type CloudFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CloudError>> + Send + 'a>>;

/// Where instances come from. Every call is bounded in time and retries transient errors itself.
pub trait Provider: Send + Sync {
    /// Every live or recently ended instance whose name starts with `prefix`, across all pages.
    fn list<'a>(&'a self, prefix: &'a str) -> CloudFuture<'a, Vec<Instance>>;
    /// Creates an instance named `name`. Calling it again with the same `client_token` returns the same
    /// instance instead of creating a second one.
    fn create<'a>(&'a self, name: &'a str, client_token: &'a str) -> CloudFuture<'a, Instance>;
    /// Terminates the instance `id` (terminating one already gone is not an error).
    fn terminate<'a>(&'a self, id: &'a str) -> CloudFuture<'a, ()>;
    /// The load (percent) of each of `ids` averaged over the last `window`, in the same order, in one batched
    /// call where the provider allows; `None` = no data yet.
    fn load<'a>(&'a self, ids: &'a [String], window: Duration)
    -> CloudFuture<'a, Vec<Option<f64>>>;
    /// The load history of each of `ids` (terminated instances too, while the provider keeps their data) over
    /// `[since, until)`, at the finest resolution the provider keeps for each age, in batched calls; ids without
    /// data are left out. The scaler learns from it before its first decision.
    fn history<'a>(
        &'a self,
        ids: &'a [String],
        since: SystemTime,
        until: SystemTime,
    ) -> CloudFuture<'a, Vec<Series>>;
}
