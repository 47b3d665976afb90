//! `tend releases`: every deploy is a release (commit, when, what and who started it, each host's result);
//! newest first, as a table or JSON. With `[cluster]` they are read from etcd (this process joins nothing).

use tend::cluster::Cluster;
use tend::config::Config;
use tend::deploy::etcd_releases::EtcdReleases;
use tend::deploy::releases::{ReleaseLog, StoreReleases};
use tend::store::Store;

use super::Status;

/// The flags of `tend releases`.
#[derive(clap::Args)]
pub struct Args {
    /// Print JSON (`{"releases": [...]}`, newest first, with each host's result) instead of a table.
    #[arg(long)]
    json: bool,
    /// How many releases to show.
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: u32,
}

/// Lists the releases kept in the store, or in etcd with `[cluster]` (the same on every replica).
pub async fn run(config: Config, args: Args) -> anyhow::Result<Status> {
    let releases: Box<dyn ReleaseLog> = match &config.cluster {
        Some(c) => Box::new(EtcdReleases::new(Cluster::observer(c)?)),
        None => Box::new(StoreReleases::new(Store::open(&config.store.path)?)),
    };
    let list = releases.recent(args.limit).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "releases": list }))?
        );
    } else {
        print!("{}", tend::deploy::report::releases_table(&list));
    }
    Ok(Status::Ok)
}
