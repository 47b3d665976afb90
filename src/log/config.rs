//! The `[log]` section: the console's level and format, and which levels become alerts.

use serde::Deserialize;

use crate::core::{Invalid, Level};

/// Console line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-11-26T11:06:05.123Z NOTICE message key=value`.
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<LogFormat, UnknownFormat> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// A log format that is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}: use text or json")]
pub struct UnknownFormat(pub String);

/// `[log]`: console logging and which levels become alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Lowest level printed: debug, info, notice, warning, error, fatal.
    #[serde(default = "default_level")]
    pub level: Level,
    /// Lowest level mailed to the team.
    #[serde(default = "default_alert_from")]
    pub alert_from: Level,
    /// Recent log lines (all levels) attached to each alert.
    #[serde(default = "default_context_lines")]
    pub context_lines: usize,
    /// `text` or `json`.
    #[serde(default = "default_format")]
    pub format: LogFormat,
}

fn default_level() -> Level {
    Level::Info
}
fn default_alert_from() -> Level {
    Level::Error
}
fn default_context_lines() -> usize {
    20
}
fn default_format() -> LogFormat {
    LogFormat::Text
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
            alert_from: default_alert_from(),
            context_lines: default_context_lines(),
            format: default_format(),
        }
    }
}

impl LogConfig {
    /// Pure checks.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.context_lines > 10_000 {
            out.push(Invalid::new("log.context_lines", "must be at most 10000"));
        }
        if self.alert_from < Level::Warning {
            out.push(Invalid::new(
                "log.alert_from",
                "must be warning, error or fatal (lower levels would flood the inbox)",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_from_below_warning_is_refused() {
        let c = LogConfig {
            alert_from: Level::Info,
            ..LogConfig::default()
        };
        assert_eq!(c.validate().len(), 1);
    }
}
