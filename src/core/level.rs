//! [`Level`]: the six levels of the logger, least to most serious; alerts carry one as their severity.

use serde::Deserialize;

/// The six levels, least to most serious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Detail for whoever debugs.
    Debug,
    /// Normal operation.
    Info,
    /// Normal but significant: an action was taken (scaled, deployed).
    Notice,
    /// Something is off but handled.
    Warning,
    /// Someone must act.
    Error,
    /// The program cannot go on and exits.
    Fatal,
}

impl Level {
    /// Lowercase name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Uppercase name, as printed and in alert subjects.
    pub fn as_upper(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Notice => "NOTICE",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// Parses a name (as in the config; `warn` and `trace` are accepted too).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Level::Debug,
            "info" => Level::Info,
            "notice" => Level::Notice,
            "warning" | "warn" => Level::Warning,
            "error" => Level::Error,
            "fatal" => Level::Fatal,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Level, UnknownLevel> {
        Level::parse(s).ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

/// A level name that is none of the six.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?}: use debug, info, notice, warning, error or fatal")]
pub struct UnknownLevel(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_parse() {
        assert!(
            Level::Debug < Level::Info
                && Level::Notice < Level::Warning
                && Level::Error < Level::Fatal
        );
        for l in [
            Level::Debug,
            Level::Info,
            Level::Notice,
            Level::Warning,
            Level::Error,
            Level::Fatal,
        ] {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::parse("warn"), Some(Level::Warning));
        assert_eq!("loud".parse::<Level>(), Err(UnknownLevel("loud".into())));
    }
}
