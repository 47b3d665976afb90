//! `tend silence`: silence a target's alerts for a while, list the silences and maintenance windows, or clear a
//! silence. It writes to the store; a running tend reads the silences before each alert, so it counts at once.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tend::config::Config;
use tend::monitor::maintenance::{Silence, Windows, glob_match};
use tend::monitor::{report, store};
use tend::store::Store;

use super::{Status, Usage};

/// The flags of `tend silence`.
#[derive(clap::Args)]
pub struct Args {
    /// The target to silence: a name or a glob ("api-*").
    target: Option<String>,
    /// How long ("1h", "30m").
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Why (shown on the status page and in `--list`).
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
    /// List the silences in force and the maintenance windows.
    #[arg(long, conflicts_with_all = ["target", "duration", "clear"])]
    list: bool,
    /// End the silences of this target (as it was written: a name or a glob).
    #[arg(long, value_name = "TARGET", conflicts_with_all = ["target", "duration"])]
    clear: Option<String>,
}

/// Adds, lists or clears silences.
pub async fn run(config: Config, args: Args) -> anyhow::Result<Status> {
    let store = Store::open(&config.store.path)?;
    let now = SystemTime::now();
    if args.list {
        let silences = store::silences(&store, now).await?;
        let windows = Windows::new(&config.maintenance)?;
        print!("{}", report::quiet_table(&silences, &windows, now));
        return Ok(Status::Ok);
    }
    if let Some(target) = args.clear {
        let cleared = store::clear_silences(&store, target.clone(), now).await?;
        println!(
            "{}",
            match cleared {
                0 => format!("No silence of {target} was in force."),
                n => format!("Cleared {n} silence(s) of {target}: its alerts are sent again."),
            }
        );
        return Ok(Status::Ok);
    }
    let (Some(target), Some(duration)) = (args.target, args.duration) else {
        return Err(Usage(
            "say what to silence and for how long (tend silence TARGET --for 1h), or use --list or --clear TARGET"
                .into(),
        )
        .into());
    };
    if duration.is_zero() {
        return Err(Usage("--for must be more than 0s".into()).into());
    }
    let names = tend::monitor::config::target_names(config.monitor.as_ref());
    if !names.iter().any(|n| glob_match(&target, n)) {
        return Err(Usage(format!(
            "no monitor target matches {target:?} (targets: {})",
            names.join(", ")
        ))
        .into());
    }
    let by = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "someone".into()),
        tend::core::host::name()
    );
    let silence = Silence {
        id: 0,
        target: target.clone(),
        since: now,
        until: now + duration,
        reason: args.reason,
        by,
    };
    store::add_silence(&store, silence.clone())
        .await
        .context("recording the silence")?;
    println!(
        "Silenced {target} until {} ({}). A running tend holds its alerts back from now on.",
        tend::core::time::rfc3339(silence.until),
        tend::core::duration::exact(duration)
    );
    Ok(Status::Ok)
}
