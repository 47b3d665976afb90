//! `tend notify`: one test alert through every notifier, one line per notifier.

use std::time::Duration;

use tend::alert::{Alert, DeliveryReport};
use tend::config::Config;
use tend::core::{Event, Level};
use tend::log::Console;

use super::{Status, Usage};

/// The flags of `tend notify`.
#[derive(clap::Args)]
pub struct Args {
    /// Subject line (prefixed with the severity).
    #[arg(long)]
    subject: String,
    /// Body text.
    #[arg(long, default_value = "A test alert sent by `tend notify`.")]
    body: String,
    /// How long to wait for the notifiers.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Sends the alert and reports each notifier; unhealthy if any failed (it stays in the outbox).
pub async fn run(config: Config, console: Console, args: Args) -> anyhow::Result<Status> {
    if config.alert.notifier.is_empty() {
        return Err(
            Usage("no notifier is configured: add an [[alert.notifier]] section".into()).into(),
        );
    }
    let handles = super::open(&config, console)?;
    let alert = Alert::new(
        Event::TestAlert,
        "notify",
        Level::Notice,
        args.subject,
        args.body,
    );
    let report = handles.alerter.notify_now(alert, args.timeout).await;
    handles.alerter.stop(Duration::from_millis(200)).await;
    let mut failed = false;
    for (notifier, result) in &report {
        match result {
            DeliveryReport::Accepted => println!("{notifier:<16} accepted"),
            DeliveryReport::Failed(e) => {
                failed = true;
                println!("{notifier:<16} FAILED: {e}");
            }
            DeliveryReport::NoAnswer => {
                failed = true;
                println!(
                    "{notifier:<16} FAILED: no answer before the timeout (kept in the outbox)"
                );
            }
        }
    }
    Ok(Status::failed_if(failed))
}
