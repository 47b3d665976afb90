//! `tend deploy`: the plan (`--dry-run`) or the rollout, its output as it happens and a summary table.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use tend::config::Config;
use tend::deploy::{DeployContext, Deployer, WriterSink};
use tend::log::Console;

use super::{Status, Usage};

/// The flags of `tend deploy`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the plan (hosts, batches, commands) and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Deploy to this host only (its name, host:port or address).
    #[arg(long, value_name = "HOST")]
    only: Option<String>,
    /// The commit to deploy, for {commit} in the steps.
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// The branch, for {branch} in the steps.
    #[arg(long, value_name = "NAME")]
    branch: Option<String>,
}

/// Plans, then prints the plan or runs it; unhealthy when the rollout failed.
pub async fn run(config: Config, console: Console, args: Args) -> anyhow::Result<Status> {
    let Some(deploy) = config.deploy.clone() else {
        return Err(Usage("the config has no [deploy] section".into()).into());
    };
    let handles = super::open(&config, console)?;
    let deployer = Deployer::new(
        deploy,
        config.cloud.clone(),
        handles.store.clone(),
        handles.alerter.clone(),
    );
    let result = async {
        let context = DeployContext {
            commit: args.commit,
            branch: args.branch,
        };
        let plan = deployer.plan(context, args.only.as_deref()).await?;
        if args.dry_run {
            print!("{plan}");
            return Ok(Status::Ok);
        }
        let shutdown = CancellationToken::new();
        tend::runtime::cancel_on_signals(shutdown.clone());
        let sink = Arc::new(WriterSink::stdout());
        let (id, summary) = deployer.run(plan, "cli", sink, shutdown).await?;
        println!("\nDeploy #{id}:\n{}", summary.table());
        Ok::<_, tend::deploy::DeployServiceError>(Status::failed_if(summary.exit_code() != 0))
    }
    .await;
    handles.alerter.stop(Duration::from_secs(5)).await;
    Ok(result?)
}
