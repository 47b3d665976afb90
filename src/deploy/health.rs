//! The health check run after each host: one HTTP GET per attempt, healthy on a 2xx answer.

use std::future::Future;
use std::time::Duration;

/// Why a host is not healthy: the URL and what answered (status, timeout, connection refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GET {url}: {why}")]
pub struct Unhealthy {
    /// The health URL.
    pub url: String,
    /// What went wrong.
    pub why: String,
}

/// One health probe.
pub trait HealthCheck: Send + Sync + 'static {
    /// Checks `url` once.
    fn check(&self, url: &str) -> impl Future<Output = Result<(), Unhealthy>> + Send;
}

/// The real probe: reqwest, no redirects followed, per-request timeout.
#[derive(Debug, Clone)]
pub struct HttpHealth {
    client: reqwest::Client,
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the health-check HTTP client: {0}")]
pub struct HealthClientError(#[source] reqwest::Error);

impl HttpHealth {
    /// A client whose every request times out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, HealthClientError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tend/", env!("CARGO_PKG_VERSION"), " deploy"))
            .build()
            .map_err(HealthClientError)?;
        Ok(HttpHealth { client })
    }
}

impl HealthCheck for HttpHealth {
    async fn check(&self, url: &str) -> Result<(), Unhealthy> {
        let why = match self.client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => format!("HTTP {}", resp.status()),
            Err(e) if e.is_timeout() => "timed out".to_string(),
            Err(e) => crate::core::chain(&e),
        };
        Err(Unhealthy {
            url: url.to_string(),
            why,
        })
    }
}
