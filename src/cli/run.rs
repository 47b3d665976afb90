//! `tend run`: everything the config enables until a signal; with no config, the demo and its banner.

use std::io::IsTerminal as _;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use tend::app::{self, DEMO_CONFIG};
use tend::config::Config;
use tend::log::Console;

use super::{Source, Status};

/// Runs the daemon until SIGINT/SIGTERM.
pub async fn run(config: Config, source: Source, console: Console) -> anyhow::Result<Status> {
    let handles = super::open(&config, console)?;
    if let Source::Demo = source {
        print_demo_banner(&config);
    }
    let status = daemon(&config, &handles, app::Parts::ALL).await;
    if let Source::Demo = source {
        stop_demo_workers(&config, &handles).await;
    }
    status
}

/// The demo's workers stop with it (a configured `local` fleet is left running and re-adopted next time).
async fn stop_demo_workers(config: &Config, handles: &app::Handles) {
    let Some(cloud) = &config.cloud else { return };
    let tend::cloud::config::ProviderKind::Local(local) = cloud.kind() else {
        return;
    };
    match tend::cloud::local::stop_all(local, &handles.store, &cloud.prefix).await {
        Ok(0) => {}
        Ok(n) => println!("Stopped the demo's {n} worker(s)."),
        Err(error) => {
            eprintln!("error: cannot stop the demo's workers: {error} (see `tend fleet`)")
        }
    }
}

/// Runs `parts` until a signal, then stops the alerter (giving pending alerts two seconds).
pub async fn daemon(
    config: &Config,
    handles: &app::Handles,
    parts: app::Parts,
) -> anyhow::Result<Status> {
    let shutdown = CancellationToken::new();
    tend::runtime::cancel_on_signals(shutdown.clone());
    let result = app::run(config, handles, parts, shutdown).await;
    handles.alerter.stop(Duration::from_secs(2)).await;
    result?;
    Ok(Status::Ok)
}

fn print_demo_banner(config: &Config) {
    let color = std::io::stdout().is_terminal();
    let (b, r) = if color {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    println!("{b}tend demo{r}: no --config and no ./tend.toml, so this embedded config runs:\n");
    for line in DEMO_CONFIG.lines() {
        println!("    {line}");
    }
    println!(
        "\n{b}Look at{r}: http://{}/ (status), http://{}/metrics, alerts as .eml files in {}.",
        config.web.listen,
        config.web.listen,
        config
            .alert
            .notifier
            .iter()
            .find_map(|n| match n {
                tend::alert::NotifierConfig::File(f) => Some(f.path.display().to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "the outbox".into())
    );
    if config.cloud.is_some() && config.scale.is_some() {
        println!(
            "{b}Watch it scale{r}: `echo 2.5 > tend-data/demo/demand` asks the workers for 2.5 servers' worth of CPU \
             (0.3 when absent); `tend fleet` shows them. The demo's workers stop with it on Ctrl-C."
        );
    }
    println!(
        "{b}Change it{r}: save the config above as ./tend.toml and edit it. Stop with Ctrl-C.\n"
    );
}
