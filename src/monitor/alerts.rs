//! What the team is told about the monitor: each tracker or storm alert worded as an [`Alert`] (pure).

use super::config::MonitorConfig;
use super::storm::{Alert as StormAlert, GroupKind};
use super::tracker::Event as Change;
use super::view::what;
use crate::alert::Alert;
use crate::core::Event::{MonitorDown, MonitorStillDown, MonitorUp};
use crate::core::{Level, duration, time};

/// The alert for one storm-control decision, with the targets' names and what they check.
pub fn compose(alert: &StormAlert, config: &MonitorConfig) -> Alert {
    let name_of = |i: usize| {
        config
            .target
            .get(i)
            .map_or("?", |t| t.name.as_str())
            .to_string()
    };
    match alert {
        StormAlert::Single { index, event } => {
            let name = name_of(*index);
            let what = config.target.get(*index).map(what).unwrap_or_default();
            match event {
                Change::MonitorDown { since, reason } => Alert::new(
                    MonitorDown,
                    &name,
                    Level::Error,
                    format!("{name} is down: {reason}"),
                    format!(
                        "{name} ({what}) is down since {}.\nLast check: {reason}",
                        time::rfc3339(*since)
                    ),
                ),
                Change::MonitorStillDown {
                    since,
                    down_for,
                    reason,
                } => Alert::new(
                    MonitorStillDown,
                    &name,
                    Level::Warning,
                    format!(
                        "{name} is still down after {}",
                        duration::seconds(*down_for)
                    ),
                    format!(
                        "{name} ({what}) is down since {}.\nLast check: {reason}",
                        time::rfc3339(*since)
                    ),
                ),
                Change::MonitorUp {
                    downtime,
                    last_failure,
                } => Alert::new(
                    MonitorUp,
                    &name,
                    Level::Notice,
                    format!("{name} is up again after {}", duration::seconds(*downtime)),
                    format!(
                        "{name} ({what}) answers again. It was down for {}; the last failure was: {last_failure}",
                        duration::seconds(*downtime)
                    ),
                ),
            }
        }
        StormAlert::Grouped {
            kind,
            targets,
            message,
        } => {
            let list: Vec<String> = targets
                .iter()
                .map(|i| format!("- {}", name_of(*i)))
                .collect();
            let severity = match kind {
                GroupKind::Down => Level::Error,
                GroupKind::StillDown => Level::Warning,
                GroupKind::Up => Level::Notice,
            };
            Alert::new(
                alert.name(),
                "storm",
                severity,
                message.clone(),
                format!("{message}\n\nTargets:\n{}", list.join("\n")),
            )
        }
    }
}
