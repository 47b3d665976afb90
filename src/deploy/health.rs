//! The health check run after each host: one HTTP GET per attempt, healthy on a 2xx answer.

use std::future::Future;
use std::time::Duration;

/// One health probe.
pub trait HealthCheck: Send + Sync + 'static {
    /// Checks `url` once; `Err` says why it is unhealthy (status, timeout, connection refused).
    fn check(&self, url: &str) -> impl Future<Output = Result<(), String>> + Send;
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
    async fn check(&self, url: &str) -> Result<(), String> {
        match self.client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("GET {url}: HTTP {}", resp.status())),
            Err(e) if e.is_timeout() => Err(format!("GET {url}: timed out")),
            Err(e) => Err(format!("GET {url}: {}", error_chain(&e))),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
