//! [`Retry`]: the `[cloud.retry]` settings and the bounded, jittered retry of a provider's transient errors, each
//! attempt inside a timeout. Uses only `provider.rs` of its siblings.

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;

use super::provider::CloudError;
use crate::core::Invalid;

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
