//! Load balancers: new instances join once they run, and leave before they are terminated.
//!
//! A [`Balancer`] registers and deregisters one instance. Two kinds, picked by `[scale.balancer] kind`:
//! [`elb`] (an ELBv2 target group through the official SDK) and [`command`] (any balancer driven by shell
//! commands: HAProxy's runtime API, an nginx upstream file plus reload, a DNS update).

use std::sync::Arc;

use serde::Deserialize;

use crate::cloud::{CloudError, Retry};
use crate::core::Invalid;

pub mod command;
mod edge;
pub mod elb;

pub use edge::Balancer;

/// `[scale.balancer]`: where new instances are registered; `kind` picks which.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BalancerConfig {
    /// An ELBv2 (ALB/NLB) target group.
    Elb(elb::ElbConfig),
    /// Shell commands.
    Command(command::CommandConfig),
}

impl BalancerConfig {
    /// Pure checks; `path` is the table's key path (`scale.balancer`).
    pub fn validate(&self, path: &str) -> Vec<Invalid> {
        match self {
            BalancerConfig::Elb(c) => c.validate(path),
            BalancerConfig::Command(c) => c.validate(path),
        }
    }
}

/// Builds the configured balancer. The ELB client takes its region and endpoint from the balancer's table,
/// falling back to `aws` (the `[cloud.aws]` table).
pub async fn build(
    config: &BalancerConfig,
    aws: Option<&crate::cloud::aws::AwsConfig>,
    retry: Retry,
) -> Result<Arc<dyn Balancer>, CloudError> {
    Ok(match config {
        BalancerConfig::Elb(c) => Arc::new(elb::ElbBalancer::from_config(c, aws, retry).await?),
        BalancerConfig::Command(c) => Arc::new(command::CommandBalancer::new(c.clone())),
    })
}

#[cfg(test)]
pub mod testing {
    //! A recording fake balancer, optionally failing.

    use super::*;
    use crate::cloud::{CloudFuture, Instance};
    use std::sync::Mutex;

    /// Records every call as `register ID` / `deregister ID`; fails while `fail` is set.
    #[derive(Debug, Default)]
    pub struct FakeBalancer {
        /// The calls, in order.
        pub calls: Mutex<Vec<String>>,
        /// When set, every call fails with this permanent error.
        pub fail: Mutex<Option<String>>,
    }

    impl FakeBalancer {
        fn record(&self, what: &str, id: &str) -> Result<(), CloudError> {
            if let Some(message) = self.fail.lock().unwrap().clone() {
                return Err(CloudError::permanent(format!("fake:{what}"), message));
            }
            self.calls.lock().unwrap().push(format!("{what} {id}"));
            Ok(())
        }

        /// The calls so far.
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Balancer for FakeBalancer {
        fn register<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()> {
            Box::pin(async move { self.record("register", &instance.id) })
        }
        fn deregister<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()> {
            Box::pin(async move { self.record("deregister", &instance.id) })
        }
    }
}
