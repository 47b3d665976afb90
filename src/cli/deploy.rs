//! `tend deploy`: the plan (`--dry-run`) or the rollout (`--rollback`: back to the last good release), its
//! progress as it happens (live lines on a terminal, plain lines otherwise, JSON lines with `--json`) and a
//! summary. With `[cluster]` only `--dry-run` runs here: deploys run on the leader (see `deploy/lead.rs`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use tend::config::Config;
use tend::deploy::JsonSink;
use tend::deploy::etcd_releases::EtcdReleases;
use tend::deploy::report::summary_json;
use tend::deploy::{DeployContext, Deployer, Origin, RolloutSink, WriterSink};
use tend::log::Console;

use super::progress::TermSink;
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
    #[arg(long, value_name = "SHA", conflicts_with = "rollback")]
    commit: Option<String>,
    /// The branch, for {branch} in the steps.
    #[arg(long, value_name = "NAME", conflicts_with = "rollback")]
    branch: Option<String>,
    /// Redeploy the last successful release before the current one (its commit and branch), with the same
    /// steps and draining.
    #[arg(long)]
    rollback: bool,
    /// Print one JSON object per line for each event, then a summary object (for scripts); only warnings and
    /// errors are logged (on stderr).
    #[arg(long)]
    json: bool,
}

/// Plans, then prints the plan or runs it; unhealthy when the rollout failed.
pub async fn run(config: Config, console: Console, args: Args) -> anyhow::Result<Status> {
    let Some(deploy) = config.deploy.clone() else {
        return Err(Usage("the config has no [deploy] section".into()).into());
    };
    // Stdout carries only the JSON lines: log lines below warnings (which go to stderr) are not printed.
    let console = match args.json {
        true => Console {
            level: console.level.max(tend::log::Level::Warning),
            format: console.format,
        },
        false => console,
    };
    if config.cluster.is_some() && !args.dry_run {
        return Err(Usage(
            "with [cluster], deploys run on the leader: send the signed webhook to any replica \
             (tend deploy --dry-run still prints the plan; tend releases shows the cluster's releases)"
                .into(),
        )
        .into());
    }
    let handles = super::open(&config, console)?;
    let mut deployer = Deployer::new(
        deploy,
        config.cloud.clone(),
        handles.store.clone(),
        handles.alerter.clone(),
    )
    .with_scale_balancer(config.scale.as_ref().and_then(|s| s.balancer.clone()));
    if let Some(cluster) = &config.cluster {
        // `--rollback --dry-run` looks for its target in the cluster's releases.
        let observer = tend::cluster::Cluster::observer(cluster)?;
        deployer = deployer.with_releases(Arc::new(EtcdReleases::new(observer)));
    }
    let result = rollout(&deployer, args).await;
    handles.alerter.stop(Duration::from_secs(5)).await;
    Ok(result?)
}

async fn rollout(
    deployer: &Deployer,
    args: Args,
) -> Result<Status, tend::deploy::DeployServiceError> {
    let (plan, origin) = if args.rollback {
        let (plan, target) = deployer.rollback_plan(args.only.as_deref()).await?;
        if !args.json {
            println!(
                "Rolling back to release #{} (commit {}, deployed {})",
                target.id,
                target.commit.as_deref().unwrap_or("-"),
                target.started_at
            );
        }
        (plan, Origin::rollback(target.id))
    } else {
        let context = DeployContext {
            commit: args.commit,
            branch: args.branch,
        };
        let plan = deployer.plan(context, args.only.as_deref()).await?;
        (plan, Origin::cli())
    };
    if args.dry_run {
        print!("{plan}");
        return Ok(Status::Ok);
    }
    let shutdown = CancellationToken::new();
    tend::runtime::cancel_on_signals(shutdown.clone());
    let sink: Arc<dyn RolloutSink> = if args.json {
        Arc::new(JsonSink::stdout())
    } else if std::io::stderr().is_terminal() {
        Arc::new(TermSink::new())
    } else {
        Arc::new(WriterSink::stdout())
    };
    let (id, summary) = deployer.run(plan, &origin, sink, shutdown).await?;
    if args.json {
        println!("{}", summary_json(id, &summary));
    } else {
        println!("\nDeploy #{id}:\n{}", summary.table());
    }
    Ok(Status::failed_if(summary.exit_code() != 0))
}
