//! Durations as people write and read them: the serde adapter for "90s", "5m", "1h 30m" in the config, and the
//! short forms that log lines, alerts and reports print.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses "90s", "5m", "1h": `#[serde(with = "crate::core::duration")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?}: {e} (write e.g. \"90s\", \"5m\", \"1h\")"
        ))
    })
}

/// Writes the duration back in the same human form.
pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*v).to_string())
}

/// The same for `Option<Duration>`: `#[serde(default, with = "crate::core::duration::option")]`.
pub mod option {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    /// Parses "90s", "5m", "1h" into `Some`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }

    /// Writes `Some` in the human form and `None` as nothing.
    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::serialize(v, s),
            None => s.serialize_none(),
        }
    }
}

/// The whole duration in humantime's form ("1h 30m", "250ms"): for config values quoted back to the user.
pub fn exact(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// To the second ("2h 5m 3s"; "0s" under a second): for how long something lasted.
pub fn seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Short, for timings: "850ms" under a second, "1.5s", "12s" for whole seconds.
pub fn short(d: Duration) -> String {
    if d >= Duration::from_secs(1) && d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Seconds with one decimal ("7.1s"): for tables of run times.
pub fn tenths(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_forms() {
        assert_eq!(exact(Duration::from_millis(90_250)), "1m 30s 250ms");
        assert_eq!(seconds(Duration::from_millis(90_250)), "1m 30s");
        assert_eq!(short(Duration::from_millis(850)), "850ms");
        assert_eq!(short(Duration::from_millis(1500)), "1.5s");
        assert_eq!(short(Duration::from_secs(12)), "12s");
        assert_eq!(tenths(Duration::from_millis(7_090)), "7.1s");
    }

    #[test]
    fn parses_and_explains() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(with = "super")]
            d: Duration,
        }
        let t: T = toml::from_str("d = \"1h 30m\"").unwrap();
        assert_eq!(t.d, Duration::from_secs(5400));
        let e = toml::from_str::<T>("d = \"soon\"")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
    }
}
