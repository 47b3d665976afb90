//! The command line's shape (clap) and its dispatch: parse, load the config, run one subcommand, map the result
//! to an exit code (`exit.rs`, the one place that does).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};
use tracing_subscriber::prelude::*;

use tend::app::{DEMO_CONFIG, Handles};
use tend::config::Config;
use tend::log::{AlertLayer, Console, Level, LogFormat};

mod check_config;
mod cluster;
mod deploy;
mod exit;
mod fleet;
mod monitor;
mod notify;
mod progress;
mod releases;
mod run;
mod silence;
mod simulate;
mod status;

pub use exit::{Status, Usage};

const ABOUT: &str =
    "Do-it-yourself DevOps: alerts, website monitoring, predictive autoscaling and SSH deploys";

const EXAMPLES: &str = "\
Examples:
  tend run                          start the demo (no config needed), status page on http://127.0.0.1:8080/
  tend run --config /etc/tend.toml  run what the config enables
  tend check-config --config tend.toml
  tend notify --subject \"Test\"     send a test alert through every notifier
  tend completions bash > /etc/bash_completion.d/tend

Exit codes: 0 ok, 1 unhealthy or failed, 2 bad usage or config, 3 unexpected error.";

#[derive(Parser)]
#[command(name = "tend", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// Config file [default: ./tend.toml; without it, `run` uses the embedded demo].
    #[arg(long, global = true, env = "TEND_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Lowest level printed: debug, info, notice, warning, error, fatal [default: the config's log.level].
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<Level>,
    /// Console line format: text or json [default: the config's log.format].
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything the config enables: web, alerts, and each configured part.
    ///
    /// Without --config and without ./tend.toml, runs the embedded demo and prints it.
    ///
    /// Example: tend run --config /etc/tend/tend.toml
    Run,
    /// Parse and validate the config, print a summary; errors as FILE:LINE:COL: message (exit 2).
    ///
    /// Example: tend check-config --config tend.toml
    CheckConfig,
    /// Send a test alert through every configured notifier and report each (exit 1 if any failed).
    ///
    /// The alert goes through the outbox like any other: one that fails is retried by a running tend.
    ///
    /// Example: tend notify --subject "Test from tend" --body "Can you read me?"
    Notify(notify::Args),
    /// Only the website monitors (and the status page); --once: check each target once and print a table.
    ///
    /// With --once, exits 1 if any target is down: use it from cron or CI.
    ///
    /// Example: tend monitor --once --config tend.toml
    Monitor(monitor::Args),
    /// List the fleet: the instances with the prefix, their state, age, address and load.
    ///
    /// Example: tend fleet --json
    Fleet(fleet::FleetArgs),
    /// Run only the orchestrator; --once runs one cycle and prints the fleet, the decision and why.
    ///
    /// Example: tend scale --once --dry-run
    Scale(fleet::ScaleArgs),
    /// The demo's worker process (started by the `local` provider): burns its share of `DIR/demand`.
    #[command(hide = true)]
    Worker {
        /// This worker's name.
        #[arg(long)]
        name: String,
        /// Folder with the `demand` file and the workers' heartbeats.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Roll the configured steps out to the hosts, batch by batch, with a health check after each host.
    ///
    /// Stops at the first failure (or after max_failures), alerts, and exits 1. Two deploys never run at once.
    /// With [deploy] balancer, each host leaves the balancer while it changes.
    ///
    /// Example: tend deploy --commit 3f2c1ab --dry-run; tend deploy --rollback
    Deploy(deploy::Args),
    /// The cluster as etcd holds it: members, the leader, whether etcd answers (exit 1 if not, or no leader).
    ///
    /// Example: tend cluster --json
    Cluster(cluster::Args),
    /// List the releases (every deploy: commit, when, who, each host's result), newest first.
    ///
    /// Example: tend releases --json
    Releases(releases::Args),
    /// One screen from a running tend: monitors, fleet and last scaling decision, last release, cluster leader.
    ///
    /// Exits 1 if a monitor is down or the daemon cannot be reached.
    ///
    /// Example: tend status --url http://127.0.0.1:8080
    Status(status::Args),
    /// Replay a load trace against scaling policies: tend's own, the seed's, AWS's and Kubernetes'.
    ///
    /// Example: tend simulate --trace load.csv --step 30s --sweep --svg fleet.svg
    Simulate(simulate::Args),
    /// Silence a monitor target's alerts for a while, list silences and maintenance windows, or clear one.
    ///
    /// A running tend honours it at once: checks go on, alerts are held back; an outage still open when the
    /// silence ends is alerted then.
    ///
    /// Example: tend silence shop --for 1h --reason "db migration"; tend silence --list; tend silence --clear shop
    Silence(silence::Args),
    /// Print a shell completion script.
    ///
    /// Example: tend completions zsh > ~/.zfunc/_tend
    Completions {
        /// bash, zsh or fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
}

/// Where the running config came from.
#[derive(Debug, Clone)]
enum Source {
    /// A file.
    File(PathBuf),
    /// The embedded demo.
    Demo,
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            exit::print(&error);
            ExitCode::from(exit::code(&error))
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tend", &mut std::io::stdout());
            return Ok(Status::Ok);
        }
        Command::Worker { name, dir } => {
            tend::cloud::worker::run(&name, &dir)
                .with_context(|| format!("worker {name} in {}", dir.display()))?;
            return Ok(Status::Ok);
        }
        // Pure computation on a trace file: needs no config, store or runtime.
        Command::Simulate(args) => return simulate::run(args),
        _ => {}
    }
    let (config, source) = load_config(cli.config.as_deref())?;
    let console = Console {
        level: cli.log_level.unwrap_or(config.log.level),
        format: cli.log_format.unwrap_or(config.log.format),
    };
    match cli.command {
        Command::CheckConfig => {
            check_config::print_summary(&config, &source);
            Ok(Status::Ok)
        }
        Command::Run => with_runtime(run::run(config, source, console)),
        Command::Notify(args) => with_runtime(notify::run(config, console, args)),
        Command::Monitor(args) => with_runtime(monitor::run(config, console, args)),
        Command::Deploy(args) => with_runtime(deploy::run(config, console, args)),
        Command::Releases(args) => with_runtime(releases::run(config, args)),
        Command::Status(args) => with_runtime(status::run(config, args)),
        Command::Fleet(args) => with_runtime(fleet::fleet(config, console, args)),
        Command::Scale(args) => with_runtime(fleet::scale(config, console, args)),
        Command::Cluster(args) => with_runtime(cluster::run(config, args)),
        Command::Silence(args) => with_runtime(silence::run(config, args)),
        Command::Completions { .. } | Command::Simulate(_) | Command::Worker { .. } => {
            Ok(Status::Ok)
        }
    }
}

/// Runs `f` on a fresh multi-threaded runtime; in-flight tasks get a second after it returns.
fn with_runtime(
    f: impl std::future::Future<Output = anyhow::Result<Status>>,
) -> anyhow::Result<Status> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let status = rt.block_on(f);
    rt.shutdown_timeout(Duration::from_secs(1));
    status
}

/// The config from --config, ./tend.toml, or the embedded demo.
fn load_config(explicit: Option<&Path>) -> anyhow::Result<(Config, Source)> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("tend.toml")).filter(|p| p.exists()),
    };
    match path {
        Some(path) => Ok((Config::load(&path)?, Source::File(path))),
        None => {
            let config = Config::parse(DEMO_CONFIG, "<demo>", &|v| std::env::var(v).ok())?;
            Ok((config, Source::Demo))
        }
    }
}

/// Opens the store, starts the alerter and installs logging (console lines, alerts from error logs and panics).
fn open(config: &Config, console: Console) -> anyhow::Result<Handles> {
    let handles = Handles::open(config)?;
    let layer = AlertLayer::new(handles.alerter.clone(), &config.log).with_console(console);
    // try_init also bridges the `log` crate (tracing-subscriber's default `tracing-log` feature).
    let _ = tracing_subscriber::registry().with(layer).try_init();
    tend::log::install_panic_hook();
    Ok(handles)
}
