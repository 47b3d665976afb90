//! `tend monitor`: only the monitors and the page; `--once` checks each target once and prints a table.

use tend::app::Parts;
use tend::config::Config;
use tend::log::Console;
use tend::monitor::{Checker, Probe, report, scheduler};

use super::{Status, Usage};

/// The flags of `tend monitor`.
#[derive(clap::Args)]
pub struct Args {
    /// Check every target once, concurrently, print a table, exit.
    #[arg(long)]
    once: bool,
}

/// The monitor loop, or one round and its table (unhealthy if any target is down).
pub async fn run(config: Config, console: Console, args: Args) -> anyhow::Result<Status> {
    let Some(monitor) = config.monitor.clone() else {
        return Err(Usage("the config has no [monitor] section".into()).into());
    };
    if args.once {
        let checker = Checker::new(&monitor)?;
        let probes = Probe::all(&monitor)?;
        let outcomes = scheduler::check_all_once(&checker, &probes, monitor.concurrency).await;
        let (table, down) = report::once_table(&probes, &outcomes);
        print!("{table}");
        return Ok(Status::failed_if(down > 0));
    }
    let handles = super::open(&config, console)?;
    let parts = Parts {
        monitor: true,
        scale: false,
    };
    super::run::daemon(&config, &handles, parts).await
}
