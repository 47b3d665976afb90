//! The `tend` command line. Exit codes: 0 ok, 1 the thing checked is unhealthy or a step failed, 2 bad usage
//! or config, 3 an unexpected error.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::prelude::*;

use tend::alert::{Alert, Alerter};
use tend::app::{self, Context, DEMO_CONFIG, Source};
use tend::config::{Config, ConfigErrors};
use tend::log::{AlertLayer, Console, Level, LogFormat};
use tend::metrics::Metrics;
use tend::store::{Store, StoreError};

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
    #[arg(long, global = true, value_name = "LEVEL", value_parser = parse_level)]
    log_level: Option<Level>,
    /// Console line format [default: the config's log.format].
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
    Notify {
        /// Subject line (prefixed with the severity).
        #[arg(long)]
        subject: String,
        /// Body text.
        #[arg(long, default_value = "A test alert sent by `tend notify`.")]
        body: String,
        /// How long to wait for the notifiers.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Only the website monitors (and the status page); --once: check each target once and print a table.
    ///
    /// With --once, exits 1 if any target is down: use it from cron or CI.
    ///
    /// Example: tend monitor --once --config tend.toml
    Monitor {
        /// Check every target once, concurrently, print a table, exit.
        #[arg(long)]
        once: bool,
    },
    /// List the fleet: the instances with the prefix, their state, age, address and load.
    ///
    /// Example: tend fleet --json
    Fleet {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run only the orchestrator; --once runs one cycle and prints the fleet, the decision and why.
    ///
    /// Example: tend scale --once --dry-run
    Scale {
        /// One cycle, then exit (1 if its action failed).
        #[arg(long)]
        once: bool,
        /// Decide and store, but create and terminate nothing.
        #[arg(long)]
        dry_run: bool,
    },
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
    ///
    /// Example: tend deploy --commit 3f2c1ab --dry-run
    Deploy {
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
    },
    /// Replay a load trace against scaling policies: tend's own, the seed's, AWS's and Kubernetes'.
    ///
    /// Example: tend simulate --trace load.csv --step 30s --sweep --svg fleet.svg
    Simulate(tend::sim::SimulateArgs),
    /// Print a shell completion script.
    ///
    /// Example: tend completions zsh > ~/.zfunc/_tend
    Completions {
        /// bash, zsh or fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s).ok_or_else(|| {
        format!("unknown level {s:?}: use debug, info, notice, warning, error or fatal")
    })
}

/// An error with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let usage = error.downcast_ref::<ConfigErrors>().is_some()
            || error.downcast_ref::<StoreError>().is_some()
            || matches!(
                error.downcast_ref::<tend::web::WebError>(),
                Some(tend::web::WebError::Bind { .. })
            );
        Failure {
            code: if usage { 2 } else { 3 },
            error,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if f.error.downcast_ref::<ConfigErrors>().is_some() {
                eprintln!("{}", f.error);
            } else {
                eprintln!("error: {}", chain(&f.error));
            }
            ExitCode::from(f.code)
        }
    }
}

/// The error and its causes, `: `-separated, skipping a cause whose text the message before it already shows
/// (many library errors print their source in their own message).
fn chain(error: &anyhow::Error) -> String {
    let mut out = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

fn real_main(cli: Cli) -> Result<u8, Failure> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "tend", &mut std::io::stdout());
        return Ok(0);
    }
    if let Command::Worker { name, dir } = &cli.command {
        tend::cloud::worker::run(name, dir)
            .with_context(|| format!("worker {name} in {}", dir.display()))?;
        return Ok(0);
    }
    if let Command::Simulate(args) = &cli.command {
        // Pure computation on a trace file: needs no config, store or runtime.
        return match tend::sim::run(args, &mut std::io::stdout().lock()) {
            Ok(_) => Ok(0),
            Err(e) => Err(Failure {
                code: if matches!(e, tend::sim::SimError::Output { .. }) {
                    3
                } else {
                    2
                },
                error: e.into(),
            }),
        };
    }
    let (config, source) = load_config(cli.config.as_deref())?;
    let console = Console {
        level: cli.log_level.unwrap_or(config.log.level),
        format: cli.log_format.unwrap_or(config.log.format),
    };
    match cli.command {
        Command::CheckConfig => {
            print_summary(&config, &source);
            Ok(0)
        }
        Command::Run => with_runtime(|| async move {
            let ctx = open(config, console)?;
            if let Source::Demo = source {
                print_demo_banner(&ctx.config);
            }
            let shutdown = CancellationToken::new();
            tend::runtime::cancel_on_signals(shutdown.clone());
            let result = app::run(ctx.clone(), app::Parts::ALL, shutdown).await;
            ctx.alerter.stop(Duration::from_secs(2)).await;
            result?;
            Ok(0)
        }),
        Command::Notify {
            subject,
            body,
            timeout,
        } => with_runtime(|| async move {
            let ctx = open(config, console)?;
            if ctx.config.alert.notifier.is_empty() {
                return Err(Failure {
                    code: 2,
                    error: anyhow::anyhow!(
                        "no notifier is configured: add an [[alert.notifier]] section"
                    ),
                });
            }
            let alert = Alert::event("Test", "notify", Level::Notice, subject, body);
            let report = ctx.alerter.notify_now(alert, timeout).await;
            ctx.alerter.stop(Duration::from_millis(200)).await;
            let mut failed = false;
            for (notifier, result) in &report {
                match result {
                    Ok(()) => println!("{notifier:<16} accepted"),
                    Err(e) => {
                        failed = true;
                        println!("{notifier:<16} FAILED: {e}");
                    }
                }
            }
            Ok(u8::from(failed))
        }),
        Command::Monitor { once } => {
            let Some(monitor) = config.monitor.clone() else {
                return Err(Failure {
                    code: 2,
                    error: anyhow::anyhow!("the config has no [monitor] section"),
                });
            };
            if once {
                return with_runtime(|| async move { monitor_once(&monitor).await });
            }
            with_runtime(|| async move {
                let ctx = open(config, console)?;
                let shutdown = CancellationToken::new();
                tend::runtime::cancel_on_signals(shutdown.clone());
                let parts = app::Parts {
                    monitor: true,
                    scale: false,
                };
                let result = app::run(ctx.clone(), parts, shutdown).await;
                ctx.alerter.stop(Duration::from_secs(2)).await;
                result?;
                Ok(0)
            })
        }
        Command::Deploy {
            dry_run,
            only,
            commit,
            branch,
        } => with_runtime(|| async move {
            let ctx = open(config, console)?;
            let result = deploy_command(&ctx, dry_run, only, commit, branch).await;
            ctx.alerter.stop(Duration::from_secs(5)).await;
            result
        }),
        Command::Fleet { json } => with_runtime(|| async move {
            let ctx = open(config, console)?;
            let out = tend::scale::cli::fleet(&ctx, json).await;
            ctx.alerter.stop(Duration::from_millis(200)).await;
            print!("{}", out.map_err(command_failure)?);
            Ok(0)
        }),
        Command::Scale { once, dry_run } => with_runtime(|| async move {
            let ctx = open(config, console)?;
            let result = if once {
                tend::scale::cli::scale_once(&ctx, dry_run)
                    .await
                    .map(|(text, ok)| {
                        print!("{text}");
                        u8::from(!ok)
                    })
            } else {
                let shutdown = CancellationToken::new();
                tend::runtime::cancel_on_signals(shutdown.clone());
                tend::scale::cli::scale_loop(&ctx, dry_run, shutdown)
                    .await
                    .map(|()| 0)
            };
            ctx.alerter.stop(Duration::from_secs(2)).await;
            result.map_err(command_failure)
        }),
        Command::Completions { .. } | Command::Simulate(_) | Command::Worker { .. } => Ok(0),
    }
}

fn command_failure(e: tend::scale::cli::CommandError) -> Failure {
    Failure {
        code: e.exit_code(),
        error: e.into(),
    }
}

fn with_runtime<F, Fut>(f: F) -> Result<u8, Failure>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<u8, Failure>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let code = rt.block_on(f());
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// `tend deploy`: the plan (dry run) or the rollout with a summary table; exit 1 when it failed.
async fn deploy_command(
    ctx: &Context,
    dry_run: bool,
    only: Option<String>,
    commit: Option<String>,
    branch: Option<String>,
) -> Result<u8, Failure> {
    use tend::deploy::service::{self, DeployServiceError};
    let fail = |e: DeployServiceError| Failure {
        code: e.exit_code(),
        error: e.into(),
    };
    let plan = service::plan(
        ctx,
        tend::deploy::DeployContext { commit, branch },
        only.as_deref(),
    )
    .await
    .map_err(fail)?;
    if dry_run {
        print!("{plan}");
        return Ok(0);
    }
    let shutdown = CancellationToken::new();
    tend::runtime::cancel_on_signals(shutdown.clone());
    let sink = Arc::new(tend::deploy::WriterSink::stdout());
    let (id, summary) = service::run(ctx, plan, "cli", sink, shutdown)
        .await
        .map_err(fail)?;
    println!("\nDeploy #{id}:\n{}", summary.table());
    Ok(summary.exit_code() as u8)
}

/// `tend monitor --once`: every target checked once; a table; exit 1 if any is down.
async fn monitor_once(config: &tend::monitor::MonitorConfig) -> Result<u8, Failure> {
    let checker = tend::monitor::Checker::new(config)?;
    let probes = tend::monitor::Probe::all(config)?;
    let outcomes =
        tend::monitor::scheduler::check_all_once(&checker, &probes, config.concurrency).await;
    let width = probes
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  {:<5}  {:>8}  REASON", "NAME", "STATE", "TIME");
    let mut down = 0;
    for (probe, o) in probes.iter().zip(&outcomes) {
        let state = if o.up { "up" } else { "down" };
        down += usize::from(!o.up);
        println!(
            "{:<width$}  {:<5}  {:>6}ms  {}",
            probe.name,
            state,
            o.response_time.as_millis(),
            o.reason
        );
    }
    println!("{} up, {} down", outcomes.len() - down, down);
    Ok(u8::from(down > 0))
}

/// The config from --config, ./tend.toml, or the embedded demo.
fn load_config(explicit: Option<&Path>) -> Result<(Config, Source), Failure> {
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

/// Opens the store, starts the alerter and installs logging.
fn open(config: Config, console: Console) -> Result<Context, Failure> {
    let store = Store::open(&config.store.path)?;
    let metrics = Metrics::new();
    let alerter = Alerter::start(&config.alert, store.clone(), &metrics).map_err(|e| Failure {
        code: 2,
        error: e.into(),
    })?;
    let layer = AlertLayer::new(alerter.clone(), &config.log).with_console(console);
    let _ = tracing_subscriber::registry().with(layer).try_init();
    Ok(Context {
        config: Arc::new(config),
        store,
        metrics,
        alerter,
    })
}

fn print_summary(config: &Config, source: &Source) {
    match source {
        Source::File(p) => println!("{}: ok", p.display()),
        Source::Demo => {
            println!("no --config and no ./tend.toml: the embedded demo config is valid")
        }
    }
    println!("  store     {}", config.store.path.display());
    if config.web.enabled {
        println!("  web       http://{}/", config.web.listen);
    } else {
        println!("  web       disabled");
    }
    println!(
        "  log       level {}, alerts from {}, {} context lines",
        config.log.level.as_str(),
        config.log.alert_from.as_str(),
        config.log.context_lines
    );
    if let Some(cloud) = &config.cloud {
        println!(
            "  cloud     provider {}, instances named {}-…",
            format!("{:?}", cloud.provider).to_lowercase(),
            cloud.prefix
        );
    }
    if let Some(scale) = &config.scale {
        let p = &scale.policy;
        println!(
            "  scale     {}..={} instances, add above {}%, remove below {}% predicted, every {}{}",
            p.min,
            p.max,
            p.high,
            p.low,
            humantime::format_duration(p.interval),
            if scale.dry_run { " (dry run)" } else { "" }
        );
    }
    if let Some(m) = &config.monitor {
        println!(
            "  monitor   {} target(s) every {}, down after {} failures",
            m.target.len(),
            humantime::format_duration(m.interval),
            m.failure_threshold
        );
    }
    if let Some(d) = &config.deploy {
        let hosts = match &d.hosts {
            tend::deploy::config::Hosts::Fleet => "the fleet".to_string(),
            tend::deploy::config::Hosts::List(l) => format!("{} host(s)", l.len()),
        };
        let hook = if d.webhook.is_some() {
            ", webhook on /hooks/deploy"
        } else {
            ""
        };
        println!("  deploy    {} step(s) to {hosts}{hook}", d.steps.len());
    }
    let names = config.alert.notifier_names();
    if names.is_empty() {
        println!("  alerts    no notifier: alerts stay in the outbox");
    } else {
        println!(
            "  alerts    {} (dedup window {})",
            names.join(", "),
            humantime::format_duration(config.alert.dedup_window)
        );
    }
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
             (0.3 when absent); `tend fleet` shows them. Workers outlive tend and are re-adopted by the next run."
        );
    }
    println!(
        "{b}Change it{r}: save the config above as ./tend.toml and edit it. Stop with Ctrl-C.\n"
    );
}
