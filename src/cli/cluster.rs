//! `tend cluster`: the members, the leader and etcd's health, read from the config's etcd (this process
//! joins nothing); unhealthy when etcd does not answer or no replica leads.

use tend::config::Config;

use super::{Status, Usage};

/// The flags of `tend cluster`.
#[derive(clap::Args)]
pub struct Args {
    /// Print JSON (the shape of `GET /api/cluster`) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the cluster's status.
pub async fn run(config: Config, args: Args) -> anyhow::Result<Status> {
    let Some(cluster) = &config.cluster else {
        return Err(
            Usage("the config has no [cluster] section: this tend runs alone".into()).into(),
        );
    };
    let status = tend::cluster::inspect(cluster).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{status}");
    }
    Ok(Status::failed_if(
        status.etcd != "ok" || status.leader.is_none(),
    ))
}
