//! Planned work: `[[maintenance]]` windows (one-off, or weekly in a time zone) and ad-hoc silences
//! (`tend silence`), and the pure decider [`cover`]: is this target silenced at time t, why, and until when.
//!
//! During a window or a silence the checks run and are recorded, but no down or up alert is sent; the
//! monitor's service holds a down alert back (see [`super::hold`]) and sends it when the window ends if the
//! outage is still open. Time-zone rules come from jiff's bundled tz database, so a weekly window at
//! "sun 02:00" in "Europe/Berlin" opens at 02:00 Berlin time in summer and in winter.

use std::time::{Duration, SystemTime};

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

use crate::core::Invalid;
use crate::core::time::{from_millis, millis};

/// `[[maintenance]]`: a window of planned work during which the listed targets raise no alert.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// A name for the page and the logs ("database upgrade"); default: the window's position.
    #[serde(default)]
    pub name: Option<String>,
    /// Targets by name or glob (`*` any run of characters, `?` any one): `["shop", "api-*"]`.
    pub targets: Vec<String>,
    /// A one-off window's start, RFC 3339 with an offset ("2026-12-01T02:00:00+01:00").
    #[serde(default)]
    pub start: Option<String>,
    /// A one-off window's end, RFC 3339 with an offset.
    #[serde(default)]
    pub end: Option<String>,
    /// A weekly window's opening: day and local time ("sun 02:00").
    #[serde(default)]
    pub every: Option<String>,
    /// How long a weekly window lasts ("2h"; less than a week).
    #[serde(with = "crate::core::duration::option", default)]
    pub duration: Option<Duration>,
    /// The IANA time zone of `every` ("Europe/Berlin"); default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Why, shown on the page ("kernel updates").
    #[serde(default)]
    pub reason: Option<String>,
}

/// A maintenance window, compiled.
#[derive(Debug, Clone)]
pub struct Window {
    /// Its name.
    pub name: String,
    /// Why.
    pub reason: String,
    /// Target names or globs.
    pub targets: Vec<String>,
    when: When,
}

#[derive(Debug, Clone)]
enum When {
    Once {
        start: SystemTime,
        end: SystemTime,
    },
    Weekly {
        weekday: Weekday,
        hour: i8,
        minute: i8,
        duration: Duration,
        tz: TimeZone,
    },
}

/// One opening of a window: from `start` to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    /// When it opens.
    pub start: SystemTime,
    /// When it closes.
    pub end: SystemTime,
}

/// An ad-hoc silence, as `tend silence` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// Its row id.
    pub id: i64,
    /// The target name or glob it silences.
    pub target: String,
    /// When it was set.
    pub since: SystemTime,
    /// When it ends.
    pub until: SystemTime,
    /// Why (may be empty).
    pub reason: String,
    /// Who set it (`user@host`).
    pub by: String,
}

/// Why a target is quiet now, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cover {
    /// When the last window or silence covering it ends (RFC 3339 in JSON).
    #[serde(serialize_with = "crate::core::time::serialize")]
    pub until: SystemTime,
    /// "maintenance \"db upgrade\": kernel updates", "silenced by ops@box: deploying".
    pub why: String,
}

/// Whether `name` matches the glob `pattern` (`*` any run of characters, `?` any one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

impl Window {
    /// The opening of this window in force at `at`, if any.
    pub fn active_at(&self, at: SystemTime) -> Option<Opening> {
        let opening = match &self.when {
            When::Once { start, end } => Opening {
                start: *start,
                end: *end,
            },
            When::Weekly { .. } => self.weekly_opening(at, 0)?,
        };
        (opening.start <= at && at < opening.end).then_some(opening)
    }

    /// The opening in force at `at`, or else the next one (none once a one-off window has passed).
    pub fn current_or_next(&self, at: SystemTime) -> Option<Opening> {
        match &self.when {
            When::Once { start, end } => (at < *end).then_some(Opening {
                start: *start,
                end: *end,
            }),
            When::Weekly { .. } => self.active_at(at).or_else(|| self.weekly_opening(at, 7)),
        }
    }

    /// Whether this window lists `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.targets.iter().any(|p| glob_match(p, name))
    }

    /// The latest weekly opening at or before `at`, moved `later_days` days on.
    fn weekly_opening(&self, at: SystemTime, later_days: i64) -> Option<Opening> {
        let When::Weekly {
            weekday,
            hour,
            minute,
            duration,
            tz,
        } = &self.when
        else {
            return None;
        };
        let now = Timestamp::from_millisecond(millis(at)).ok()?;
        let today = now.to_zoned(tz.clone()).date();
        let back = i64::from(
            (today.weekday().to_monday_zero_offset() - weekday.to_monday_zero_offset())
                .rem_euclid(7),
        );
        let opening_on = |date: jiff::civil::Date| -> Option<SystemTime> {
            let local = date.at(*hour, *minute, 0, 0);
            let zoned = local.to_zoned(tz.clone()).ok()?;
            Some(from_millis(zoned.timestamp().as_millisecond()))
        };
        let mut day = today.checked_sub(Span::new().days(back)).ok()?;
        let mut start = opening_on(day)?;
        if start > at {
            day = day.checked_sub(Span::new().days(7)).ok()?;
            start = opening_on(day)?;
        }
        if later_days != 0 {
            start = opening_on(day.checked_add(Span::new().days(later_days)).ok()?)?;
        }
        Some(Opening {
            start,
            end: start + *duration,
        })
    }

    /// Its state at `now`, for a person: "open until T", "next T" or "over".
    pub fn status(&self, now: SystemTime) -> String {
        match (self.active_at(now), self.current_or_next(now)) {
            (Some(open), _) => format!("open until {}", crate::core::time::rfc3339(open.end)),
            (None, Some(next)) => format!("next {}", crate::core::time::rfc3339(next.start)),
            (None, None) => "over".into(),
        }
    }

    /// How the window reads on the page: "sun 02:00 Europe/Berlin for 2h" or the one-off dates.
    pub fn schedule(&self) -> String {
        match &self.when {
            When::Once { start, end } => format!(
                "{} to {}",
                crate::core::time::rfc3339(*start),
                crate::core::time::rfc3339(*end)
            ),
            When::Weekly {
                weekday,
                hour,
                minute,
                duration,
                tz,
            } => format!(
                "every {} {hour:02}:{minute:02} {} for {}",
                day_name(*weekday),
                tz.iana_name().unwrap_or("UTC"),
                crate::core::duration::exact(*duration)
            ),
        }
    }
}

/// The windows of the config, compiled; empty when there are none.
#[derive(Debug, Clone, Default)]
pub struct Windows(pub Vec<Window>);

impl Windows {
    /// Compiles every window; fails on what [`validate`] reports (run that first for all errors).
    pub fn new(list: &[MaintenanceConfig]) -> Result<Windows, Invalid> {
        list.iter()
            .enumerate()
            .map(|(i, m)| compile(i, m))
            .collect::<Result<Vec<_>, _>>()
            .map(Windows)
    }

    /// True when there is no window at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why `name` is quiet at `at`: every window and silence covering it then, the latest end kept. Pure.
pub fn cover(name: &str, at: SystemTime, windows: &Windows, silences: &[Silence]) -> Option<Cover> {
    let from_windows = windows.0.iter().filter(|w| w.covers(name)).filter_map(|w| {
        let open = w.active_at(at)?;
        let why = if w.reason.is_empty() {
            format!("maintenance {:?}", w.name)
        } else {
            format!("maintenance {:?}: {}", w.name, w.reason)
        };
        Some(Cover {
            until: open.end,
            why,
        })
    });
    let from_silences = silences
        .iter()
        .filter(|s| s.since <= at && at < s.until && glob_match(&s.target, name))
        .map(|s| Cover {
            until: s.until,
            why: if s.reason.is_empty() {
                format!("silenced by {}", s.by)
            } else {
                format!("silenced by {}: {}", s.by, s.reason)
            },
        });
    from_windows.chain(from_silences).max_by_key(|c| c.until)
}

fn compile(i: usize, m: &MaintenanceConfig) -> Result<Window, Invalid> {
    let at =
        |field: &str, message: String| Invalid::new(format!("maintenance[{i}].{field}"), message);
    let when = match (&m.start, &m.end, &m.every) {
        (Some(start), Some(end), None) => When::Once {
            start: instant(start).map_err(|e| at("start", e))?,
            end: instant(end).map_err(|e| at("end", e))?,
        },
        (None, None, Some(every)) => {
            let (weekday, hour, minute) = parse_every(every).map_err(|e| at("every", e))?;
            let name = m.timezone.as_deref().unwrap_or("UTC");
            let tz = TimeZone::get(name).map_err(|e| {
                at(
                    "timezone",
                    format!("{name:?} is not an IANA time zone (e.g. \"Europe/Berlin\"): {e}"),
                )
            })?;
            When::Weekly {
                weekday,
                hour,
                minute,
                duration: m.duration.ok_or_else(|| {
                    at(
                        "duration",
                        "a weekly window needs a duration (\"2h\")".into(),
                    )
                })?,
                tz,
            }
        }
        _ => {
            return Err(at(
                "start",
                "set either start and end (one-off) or every and duration (weekly)".into(),
            ));
        }
    };
    Ok(Window {
        name: m
            .name
            .clone()
            .unwrap_or_else(|| format!("window {}", i + 1)),
        reason: m.reason.clone().unwrap_or_default(),
        targets: m.targets.clone(),
        when,
    })
}

/// Every problem of the `[[maintenance]]` windows; `targets` are the monitor's target names (a name that is no
/// glob must be one of them).
pub fn validate(list: &[MaintenanceConfig], targets: &[&str]) -> Vec<Invalid> {
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = |field: &str, message: String| {
            Invalid::new(format!("maintenance[{i}].{field}"), message)
        };
        if m.targets.is_empty() {
            out.push(at(
                "targets",
                "list at least one target name or glob".into(),
            ));
        }
        for t in &m.targets {
            if !t.contains(['*', '?']) && !targets.contains(&t.as_str()) {
                out.push(at("targets", format!("no monitor target is named {t:?}")));
            }
        }
        match compile(i, m) {
            Err(e) => out.push(e),
            Ok(w) => match w.when {
                When::Once { start, end } if end <= start => {
                    out.push(at("end", "must be after start".into()))
                }
                When::Weekly { duration, .. }
                    if duration.is_zero() || duration >= Duration::from_secs(7 * 86_400) =>
                {
                    out.push(at(
                        "duration",
                        "must be more than 0s and less than a week".into(),
                    ))
                }
                _ => {}
            },
        }
        if m.start.is_some() && (m.duration.is_some() || m.timezone.is_some()) {
            out.push(at(
                "duration",
                "duration and timezone belong to weekly windows (every = \"sun 02:00\")".into(),
            ));
        }
    }
    out
}

fn instant(text: &str) -> Result<SystemTime, String> {
    let ts: Timestamp = text.parse().map_err(|e| {
        format!("{text:?} is not an RFC 3339 time with an offset (\"2026-12-01T02:00:00Z\"): {e}")
    })?;
    Ok(from_millis(ts.as_millisecond()))
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn day_name(day: Weekday) -> &'static str {
    DAYS.iter().find(|(_, d)| *d == day).map_or("?", |(n, _)| n)
}

/// "sun 02:00" (or "Sunday 2:00") → (weekday, hour, minute).
fn parse_every(text: &str) -> Result<(Weekday, i8, i8), String> {
    let bad = || format!("{text:?} must be a day and a 24-hour time, e.g. \"sun 02:00\"");
    let (day, time) = text.trim().split_once(' ').ok_or_else(bad)?;
    let day = day.to_ascii_lowercase();
    let weekday = DAYS
        .iter()
        .find(|(short, _)| day.get(..3) == Some(*short))
        .map(|(_, d)| *d)
        .ok_or_else(bad)?;
    let (h, m) = time.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok((weekday, h, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rfc: &str) -> SystemTime {
        instant(rfc).expect("time")
    }

    fn weekly(every: &str, duration: &str, tz: &str) -> Window {
        let m = MaintenanceConfig {
            name: Some("w".into()),
            targets: vec!["api-*".into()],
            start: None,
            end: None,
            every: Some(every.into()),
            duration: Some(humantime::parse_duration(duration).expect("duration")),
            timezone: Some(tz.into()),
            reason: Some("updates".into()),
        };
        compile(0, &m).expect("compiles")
    }

    #[test]
    fn globs() {
        assert!(glob_match("api-*", "api-eu"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*-db-*", "eu-db-1"));
        assert!(!glob_match("api-*", "shop"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("shop", "shop") && !glob_match("shop", "shops"));
    }

    #[test]
    fn weekly_windows_follow_the_local_clock_across_daylight_saving() {
        let w = weekly("sun 02:00", "2h", "Europe/Berlin");
        // Winter (UTC+1): Sunday 2026-01-04 02:00 Berlin = 01:00Z.
        assert_eq!(w.active_at(t("2026-01-04T00:59:59Z")), None);
        let open = w.active_at(t("2026-01-04T01:00:00Z")).expect("open");
        assert_eq!(
            (open.start, open.end),
            (t("2026-01-04T01:00:00Z"), t("2026-01-04T03:00:00Z"))
        );
        assert_eq!(w.active_at(t("2026-01-04T03:00:00Z")), None);
        // Summer (UTC+2): Sunday 2026-07-05 02:00 Berlin = 00:00Z.
        assert!(w.active_at(t("2026-07-05T00:30:00Z")).is_some());
        assert!(w.active_at(t("2026-07-05T02:30:00Z")).is_none());
        // Next opening from a Wednesday.
        let next = w.current_or_next(t("2026-07-08T12:00:00Z")).expect("next");
        assert_eq!(next.start, t("2026-07-12T00:00:00Z"));
        assert!(
            w.schedule()
                .contains("every sun 02:00 Europe/Berlin for 2h")
        );
    }

    #[test]
    fn a_weekly_window_over_midnight_into_the_next_day() {
        let w = weekly("sat 23:00", "3h", "UTC");
        assert!(
            w.active_at(t("2026-01-04T01:30:00Z")).is_some(),
            "sunday 01:30"
        );
        assert!(w.active_at(t("2026-01-04T02:00:00Z")).is_none());
    }

    #[test]
    fn cover_takes_windows_and_silences_and_keeps_the_latest_end() {
        let once = MaintenanceConfig {
            name: Some("db upgrade".into()),
            targets: vec!["shop".into()],
            start: Some("2026-01-01T10:00:00Z".into()),
            end: Some("2026-01-01T11:00:00Z".into()),
            every: None,
            duration: None,
            timezone: None,
            reason: None,
        };
        let windows = Windows::new(&[once]).expect("compiles");
        let silence = Silence {
            id: 1,
            target: "sh*".into(),
            since: t("2026-01-01T10:30:00Z"),
            until: t("2026-01-01T12:00:00Z"),
            reason: "deploying".into(),
            by: "ops@box".into(),
        };
        assert_eq!(
            cover("shop", t("2026-01-01T10:15:00Z"), &windows, &[]),
            Some(Cover {
                until: t("2026-01-01T11:00:00Z"),
                why: "maintenance \"db upgrade\"".into()
            })
        );
        let both = cover(
            "shop",
            t("2026-01-01T10:45:00Z"),
            &windows,
            std::slice::from_ref(&silence),
        );
        assert_eq!(both.expect("covered").why, "silenced by ops@box: deploying");
        assert_eq!(
            cover("api", t("2026-01-01T10:45:00Z"), &windows, &[silence]),
            None
        );
        assert_eq!(
            cover("shop", t("2026-01-01T11:00:00Z"), &windows, &[]),
            None
        );
    }

    #[test]
    fn validation_names_each_problem() {
        let bad = |edit: fn(&mut MaintenanceConfig)| {
            let mut m = MaintenanceConfig {
                name: None,
                targets: vec!["shop".into()],
                start: None,
                end: None,
                every: Some("sun 02:00".into()),
                duration: Some(Duration::from_secs(3600)),
                timezone: None,
                reason: None,
            };
            edit(&mut m);
            validate(&[m], &["shop"])
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(bad(|_| {}), Vec::<String>::new());
        assert!(
            bad(|m| m.every = Some("someday 2:00".into()))[0].starts_with("maintenance[0].every")
        );
        assert!(bad(|m| m.timezone = Some("Mars/Olympus".into()))[0].contains("IANA"));
        assert!(bad(|m| m.duration = None)[0].starts_with("maintenance[0].duration"));
        assert!(
            bad(|m| m.targets = vec!["shpo".into()])[0]
                .contains("no monitor target is named \"shpo\"")
        );
        assert!(
            bad(|m| {
                m.every = None;
                m.duration = None;
                m.start = Some("2026-01-02T00:00:00Z".into());
                m.end = Some("2026-01-01T00:00:00Z".into());
            })[0]
                .starts_with("maintenance[0].end: must be after start")
        );
        assert!(
            bad(|m| {
                m.every = None;
                m.duration = None;
                m.start = Some("tomorrow".into());
                m.end = Some("2026-01-01T00:00:00Z".into());
            })[0]
                .contains("RFC 3339")
        );
        assert_eq!(parse_every("Sunday 2:05"), Ok((Weekday::Sunday, 2, 5)));
    }
}
