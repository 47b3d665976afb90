//! `tend fleet` and `tend scale`: what the command line runs (main.rs only parses arguments and prints).

use tokio_util::sync::CancellationToken;

use super::run::{FleetStatus, Outcome, ScaleError, from_context};
use crate::app::Context;
use crate::cloud::CloudError;

/// Why a fleet or scale command could not run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The config lacks a section the command needs.
    #[error(
        "no [{0}] section in the config: add one (see `tend run` without a config for an example)"
    )]
    NotConfigured(&'static str),
    /// The provider or balancer failed.
    #[error("{0}")]
    Cloud(#[from] CloudError),
    /// The scaling cycle failed.
    #[error("{0}")]
    Scale(#[from] ScaleError),
}

impl CommandError {
    /// The exit code: 2 for config problems, 1 for a failed step.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::NotConfigured(_) => 2,
            _ => 1,
        }
    }
}

/// `tend fleet [--json]`: the instances with the prefix, their state and load, as a table or JSON.
pub async fn fleet(ctx: &Context, json: bool) -> Result<String, CommandError> {
    let cloud = ctx
        .config
        .cloud
        .as_ref()
        .ok_or(CommandError::NotConfigured("cloud"))?;
    let window = ctx
        .config
        .scale
        .as_ref()
        .map_or(super::policy::DEFAULT_WINDOW, |s| s.policy.window);
    let provider = crate::cloud::build(cloud, &ctx.store).await?;
    let timeout = ctx
        .config
        .scale
        .as_ref()
        .map_or(std::time::Duration::from_secs(120), |s| s.call_timeout);
    let fleet = tokio::time::timeout(
        timeout,
        super::report::fleet(&*provider, &cloud.prefix, window),
    )
    .await
    .map_err(|_| ScaleError::Timeout {
        op: "fleet",
        timeout,
    })??;
    Ok(if json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&super::report::fleet_json(&fleet)).unwrap_or_default()
        )
    } else {
        super::report::fleet_table(&fleet, std::time::SystemTime::now())
    })
}

/// `tend scale --once`: one cycle; the report text and whether the cycle's action succeeded.
pub async fn scale_once(ctx: &Context, dry_run: bool) -> Result<(String, bool), CommandError> {
    let orch = orchestrator(ctx, dry_run).await?;
    let mut orch = orch;
    let report = orch.cycle().await?;
    let ok = !matches!(report.outcome, Outcome::Failed { .. });
    Ok((super::report::cycle_text(&report), ok))
}

/// `tend scale`: the loop alone, until `shutdown`.
pub async fn scale_loop(
    ctx: &Context,
    dry_run: bool,
    shutdown: CancellationToken,
) -> Result<(), CommandError> {
    let orch = orchestrator(ctx, dry_run).await?;
    orch.run(shutdown).await?;
    Ok(())
}

async fn orchestrator(ctx: &Context, dry_run: bool) -> Result<super::Orchestrator, CommandError> {
    if ctx.config.cloud.is_none() {
        return Err(CommandError::NotConfigured("cloud"));
    }
    if ctx.config.scale.is_none() {
        return Err(CommandError::NotConfigured("scale"));
    }
    from_context(ctx, dry_run, FleetStatus::default())
        .await?
        .ok_or(CommandError::NotConfigured("scale"))
}
