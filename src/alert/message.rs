//! What flows through alerting: the [`Alert`] a caller sends, the [`Later`] alert the alert thread finishes, and
//! the planned [`Message`] every notifier delivers. A leaf of `alert/`: every room uses it; it imports none.

use std::time::SystemTime;

use crate::core::{Event, Level};

/// Something the team must hear about.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// What happened: its name starts the dedup key, the log line's `event` field and the metric label.
    pub event: Event,
    /// What it is about: a target, a fleet, a deploy, a call site.
    pub about: String,
    /// How serious; the subject is prefixed with it (`ERROR: ...`).
    pub severity: Level,
    /// One line.
    pub subject: String,
    /// Plain text with the details.
    pub body: String,
}

impl Alert {
    /// An alert for `event` about `about` (a target, host or instance).
    pub fn new(
        event: Event,
        about: impl Into<String>,
        severity: Level,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Alert {
        Alert {
            event,
            about: about.into(),
            severity,
            subject: subject.into(),
            body: body.into(),
        }
    }

    /// The dedup key: `MonitorDown:website`.
    pub fn key(&self) -> String {
        self.event.key(&self.about)
    }
}

/// An alert that the alert thread finishes (see [`Alerter::send_later`]): the caller hands over what it saw, the
/// alert thread does the slow part (formatting a long body, symbolising a backtrace). Closures returning an
/// [`Alert`] are `Later`s.
pub trait Later: Send {
    /// The alert, made on the alert thread.
    fn finish(self: Box<Self>) -> Alert;

    /// Its dedup key ([`Alert::key`]) when known before it is finished: a burst of the same alert is then
    /// counted without finishing each one.
    fn key(&self) -> Option<String> {
        None
    }

    /// Dropped unfinished: the same alert is already counted (only its first occurrence's text is kept).
    fn discard(self: Box<Self>) {}
}

impl<F: FnOnce() -> Alert + Send> Later for F {
    fn finish(self: Box<Self>) -> Alert {
        (*self)()
    }
}

/// A planned message, as notifiers receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Outbox id (stable across retries; part of the mail's Message-ID).
    pub id: i64,
    /// When it was planned.
    pub created_at: SystemTime,
    /// How serious.
    pub severity: Level,
    /// Subject without the severity prefix.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The alert keys it reports.
    pub keys: Vec<String>,
}

impl Message {
    /// The subject as sent: `ERROR: ...`.
    pub fn full_subject(&self) -> String {
        format!("{}: {}", self.severity.as_upper(), self.subject)
    }
}
