//! Wall-clock time as tend stores and shows it: milliseconds since the epoch in the store and in etcd, RFC 3339
//! on pages, in alerts and in JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the store's time unit (0 before the epoch).
pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The inverse of [`millis`] (negative values are the epoch).
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// RFC 3339 to the second, UTC: `2026-11-29T20:19:20Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// RFC 3339 to the millisecond, UTC: `2026-11-29T20:19:20.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Serde adapter writing a `SystemTime` as RFC 3339 to the second: `#[serde(serialize_with = "crate::core::time::serialize")]`.
pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// Serde adapter for a `SystemTime` written as RFC 3339 with milliseconds (readable with `etcdctl get`):
/// `#[serde(with = "crate::core::time::serde_rfc3339")]`.
pub mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    /// Writes `2026-11-29T20:19:20.123Z`.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339_millis(*t))
    }

    /// Reads RFC 3339 (with or without fractions).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_formats() {
        let t = from_millis(1_700_000_000_123);
        assert_eq!(millis(t), 1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_millis(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(from_millis(-5), UNIX_EPOCH);
    }
}
