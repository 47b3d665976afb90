//! `tend fleet` (the instances with the prefix and their load) and `tend scale` (the orchestrator alone, or one
//! cycle with `--once`).

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use tend::config::Config;
use tend::log::Console;
use tend::scale::config::DEFAULT_WINDOW;
use tend::scale::{Orchestrator, Outcome, ScaleError, observe, report};

use super::{Status, Usage};

/// The flags of `tend fleet`.
#[derive(clap::Args)]
pub struct FleetArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The flags of `tend scale`.
#[derive(clap::Args)]
pub struct ScaleArgs {
    /// One cycle, then exit (1 if its action failed).
    #[arg(long)]
    once: bool,
    /// Decide and store, but create and terminate nothing.
    #[arg(long)]
    dry_run: bool,
}

fn missing(section: &str) -> anyhow::Error {
    Usage(format!(
        "no [{section}] section in the config: add one (see `tend run` without a config for an example)"
    ))
    .into()
}

/// Lists the fleet with each instance's load over the scaling window.
pub async fn fleet(config: Config, console: Console, args: FleetArgs) -> anyhow::Result<Status> {
    let cloud = config.cloud.as_ref().ok_or_else(|| missing("cloud"))?;
    let window = config
        .scale
        .as_ref()
        .map_or(DEFAULT_WINDOW, |s| s.policy.window);
    let timeout = config
        .scale
        .as_ref()
        .map_or(Duration::from_secs(120), |s| s.call_timeout);
    let handles = super::open(&config, console)?;
    let provider = tend::cloud::build(cloud, &handles.store).await;
    let listed = match provider {
        Ok(p) => tokio::time::timeout(timeout, observe::observe(&*p, &cloud.prefix, window))
            .await
            .map_err(|_| ScaleError::Timeout {
                op: "fleet",
                timeout,
            })
            .and_then(|r| r.map_err(ScaleError::Cloud)),
        Err(e) => Err(ScaleError::Cloud(e)),
    };
    handles.alerter.stop(Duration::from_millis(200)).await;
    let fleet = listed?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::fleet_json(&fleet)).unwrap_or_default()
        );
    } else {
        print!("{}", report::fleet_table(&fleet, SystemTime::now()));
    }
    Ok(Status::Ok)
}

/// The orchestrator until a signal, or one cycle printed with its reason.
pub async fn scale(config: Config, console: Console, args: ScaleArgs) -> anyhow::Result<Status> {
    let cloud = config.cloud.as_ref().ok_or_else(|| missing("cloud"))?;
    let scale = config.scale.as_ref().ok_or_else(|| missing("scale"))?;
    if config.cluster.is_some() && !args.dry_run {
        return Err(Usage(
            "with [cluster], the leading replica scales the fleet: run `tend scale --dry-run` to see what \
             it would decide, or `tend cluster` to see who leads"
                .into(),
        )
        .into());
    }
    let handles = super::open(&config, console)?;
    let result = async {
        let mut orchestrator = Orchestrator::build(
            scale,
            cloud,
            &handles.store,
            &handles.alerter,
            &handles.metrics,
            args.dry_run,
        )
        .await
        .map_err(ScaleError::Cloud)?;
        if args.once {
            let cycle = orchestrator.cycle().await?;
            print!("{}", report::cycle_text(&cycle));
            let failed = matches!(cycle.outcome, Outcome::Failed { .. });
            return Ok(Status::failed_if(failed));
        }
        let shutdown = CancellationToken::new();
        tend::runtime::cancel_on_signals(shutdown.clone());
        orchestrator.run(shutdown).await?;
        Ok::<_, ScaleError>(Status::Ok)
    }
    .await;
    handles.alerter.stop(Duration::from_secs(2)).await;
    Ok(result?)
}
