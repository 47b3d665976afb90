//! Cloud providers: where the fleet's instances come from.
//!
//! A [`Provider`] lists the instances named with tend's prefix (every page), creates one (idempotent on a
//! client token, so a retried create never makes two), terminates one, and reads the fleet's load in one
//! batched call (`None` = no data yet, never 0 %), and reads the fleet's load history (so the scaler learns before
//! its first decision). Three implementations, picked by `[cloud] provider`:
//! [`aws`] (EC2 + CloudWatch through the official SDK), [`local`] (processes on this machine: the demo) and
//! [`sim`] (a deterministic simulated fleet on tokio time, for tests and rehearsals).
//!
//! Errors are typed: [`CloudError::Transient`] (throttling, 5xx, timeouts) is retried inside the provider with
//! bounded exponential backoff ([`Retry`]); what reaches the caller after that, or a
//! [`CloudError::Permanent`] error (bad config, auth, quota), carries the provider's error code and message.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::core::Invalid;

pub mod aws;
pub mod config;
pub mod local;
pub mod sim;
pub mod store;
#[cfg(test)]
pub mod testing;
pub mod worker;

pub use config::CloudConfig;

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

/// Bounded retry of transient errors, each attempt inside a timeout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all (1 = no retry).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// First delay between attempts; doubles each time, with jitter.
    #[serde(default = "default_backoff", with = "crate::core::duration")]
    pub backoff: Duration,
    /// Longest delay between attempts.
    #[serde(default = "default_backoff_max", with = "crate::core::duration")]
    pub backoff_max: Duration,
    /// Each attempt is abandoned (a transient error) after this long.
    #[serde(default = "default_timeout", with = "crate::core::duration")]
    pub timeout: Duration,
}

fn default_attempts() -> u32 {
    4
}
fn default_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: default_attempts(),
            backoff: default_backoff(),
            backoff_max: default_backoff_max(),
            timeout: default_timeout(),
        }
    }
}

impl Retry {
    /// Pure checks; `path` is the section's key path (`cloud.retry`).
    pub fn validate(&self, path: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.attempts == 0 || self.attempts > 20 {
            out.push(Invalid::new(
                format!("{path}.attempts"),
                "must be within 1..=20",
            ));
        }
        if self.timeout.is_zero() {
            out.push(Invalid::new(
                format!("{path}.timeout"),
                "must be longer than 0s",
            ));
        }
        out
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1): exponential, capped, ±25 % jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.backoff_max);
        base.mul_f64(0.75 + fastrand::f64() * 0.5)
    }

    /// Runs `f` until it succeeds, fails permanently, or `attempts` transient failures; each attempt inside
    /// `timeout`. The final transient error says how many attempts were made.
    pub async fn run<T, F, Fut>(&self, op: &str, mut f: F) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match tokio::time::timeout(self.timeout, f()).await {
                Ok(r) => r,
                Err(_) => Err(CloudError::transient(
                    op,
                    format!(
                        "no answer within {}",
                        crate::core::duration::exact(self.timeout)
                    ),
                )),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(CloudError::Transient { op, message, .. }) => {
                    if attempt >= self.attempts {
                        return Err(CloudError::Transient {
                            op,
                            message,
                            attempts: attempt,
                        });
                    }
                    let delay = self.delay(attempt);
                    tracing::debug!(%op, %message, attempt, retry_in = %crate::core::duration::short(delay), "Transient cloud error; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(permanent) => return Err(permanent),
            }
        }
    }
}

/// Builds the configured provider (opens SDK clients, reads the store for the `local` provider).
pub async fn build(
    config: &CloudConfig,
    store: &crate::store::Store,
) -> Result<std::sync::Arc<dyn Provider>, CloudError> {
    use config::ProviderKind;
    Ok(match config.kind() {
        ProviderKind::Aws(aws) => {
            std::sync::Arc::new(aws::AwsProvider::from_config(aws, config.retry.clone()).await?)
        }
        ProviderKind::Local(local) => {
            std::sync::Arc::new(local::LocalProvider::new(local.clone(), store.clone()).await?)
        }
        ProviderKind::Sim(sim) => std::sync::Arc::new(sim::SimProvider::from_config(sim)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick() -> Retry {
        Retry {
            attempts: 3,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_gives_up_with_the_count() {
        let calls = AtomicU32::new(0);
        let err = quick()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(CloudError::transient("ec2:X", "Throttling: slow down"))
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            err.to_string(),
            "ec2:X failed (transient, after 3 attempt(s)): Throttling: slow down"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_success_after_a_retry_is_success() {
        let calls = AtomicU32::new(0);
        let err = quick()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(CloudError::permanent("ec2:X", "AuthFailure: no"))
            })
            .await
            .unwrap_err();
        assert!(!err.is_transient());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let v = quick()
            .run("op", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(CloudError::transient("ec2:X", "500"))
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!(v, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_times_out_as_transient() {
        let err = quick()
            .run("op", std::future::pending::<Result<(), CloudError>>)
            .await
            .unwrap_err();
        assert!(err.is_transient());
        assert!(err.to_string().contains("no answer within 5s"), "{err}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = quick();
        assert!(r.delay(1) <= Duration::from_millis(125));
        assert!(r.delay(2) >= Duration::from_millis(150));
        assert!(r.delay(30) <= Duration::from_millis(1250));
    }
}
