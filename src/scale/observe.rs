//! Reading the fleet through the provider: the live instances named with the prefix, each with its load over
//! the window (`None` = no data yet). The orchestrator's cycle and `tend fleet` read it the same way.

use std::time::Duration;

use super::names::name_prefix;
use crate::cloud::{CloudError, Instance, Provider};

/// The ids of the running instances (the ones whose load is read).
pub fn running_ids(live: &[Instance]) -> Vec<String> {
    live.iter()
        .filter(|i| i.state == crate::cloud::State::Running)
        .map(|i| i.id.clone())
        .collect()
}

/// Each live instance with its load; `loads` is in the order of `running`.
pub fn with_loads(
    live: Vec<Instance>,
    running: &[String],
    loads: &[Option<f64>],
) -> Vec<(Instance, Option<f64>)> {
    live.into_iter()
        .map(|i| {
            let load = running
                .iter()
                .position(|r| *r == i.id)
                .and_then(|p| loads.get(p).copied().flatten());
            (i, load)
        })
        .collect()
}

/// The live instances named `{prefix}-…` with their load over `window` (`tend fleet`).
pub async fn observe(
    provider: &dyn Provider,
    prefix: &str,
    window: Duration,
) -> Result<Vec<(Instance, Option<f64>)>, CloudError> {
    let live: Vec<Instance> = provider
        .list(&name_prefix(prefix))
        .await?
        .into_iter()
        .filter(|i| i.state.is_live())
        .collect();
    let running = running_ids(&live);
    let loads = provider.load(&running, window).await?;
    Ok(with_loads(live, &running, &loads))
}
