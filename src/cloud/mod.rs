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

pub mod aws;
pub mod config;
pub mod local;
mod provider;
mod retry;
pub mod sim;
pub mod store;
#[cfg(test)]
pub mod testing;
pub mod worker;

pub use config::CloudConfig;
pub use provider::{CloudError, CloudFuture, Instance, Provider, Series, State};
pub use retry::Retry;

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
