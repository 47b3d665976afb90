//! What an error log becomes. The caller's thread copies what it saw (message, fields, call site and the context
//! lines) into one buffer; the alert thread formats the alert from it and hands the buffer back for reuse. So
//! `error!` costs the caller a copy into memory it has used before: no formatting of a mail, and in a burst of
//! errors no fresh pages (a fresh page is a page fault, microseconds, on the caller's thread).

use std::fmt::Write as _;
use std::sync::Mutex;

use tracing::Metadata;

use super::ring::Ring;
use crate::alert::{Alert, Later};
use crate::core::Event;
use crate::core::Level;

/// Buffers kept for reuse: enough for the errors of a few milliseconds of a burst (the alert thread looks at
/// its queue every 5 ms while alerts flow).
const POOL_MAX: usize = 2048;
/// A buffer larger than this (a huge message) is freed rather than kept.
const BUFFER_MAX: usize = 8 * 1024;

/// Captures the alert thread has finished with, ready for the next error. Boxed on purpose: the box itself is
/// reused, as it goes to the alert thread as a `Box<dyn Later>`.
#[allow(clippy::vec_box)]
static POOL: Mutex<Vec<Box<Captured>>> = Mutex::new(Vec::new());

/// An error log as its caller saw it, in one buffer: message, fields, file, target, then the context lines
/// (each ending in `\n`).
pub(super) struct Captured {
    level: Level,
    line: u32,
    text: String,
    /// Where the message, fields, file and target end in `text`.
    ends: [usize; 4],
    context: usize,
    /// A repeat (`repeat.rs`): its context lines went with the alert before it.
    repeat: bool,
    /// The call site's mark in `repeat.rs` (0: untracked).
    site: usize,
}

impl Captured {
    /// Copies the event and the ring's lines (none for a repeat), into a reused buffer when there is one.
    /// `site` is the call site's mark in `repeat.rs`, unmarked when the alert thread takes it.
    pub(super) fn new(
        level: Level,
        meta: &Metadata<'_>,
        (message, fields): (&str, &str),
        ring: Option<&Ring>,
        site: usize,
    ) -> Box<Captured> {
        let reused = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut captured = reused.unwrap_or_else(|| {
            Box::new(Captured {
                level,
                line: 0,
                text: String::new(),
                ends: [0; 4],
                context: 0,
                repeat: false,
                site: 0,
            })
        });
        let file = meta.file().unwrap_or("?");
        let parts = [message, fields, file, meta.target()];
        let context = ring.map_or(0, |r| r.copied_len());
        let size = parts.iter().map(|p| p.len()).sum::<usize>() + context;
        let text = &mut captured.text;
        text.clear();
        if text.capacity() < size {
            // Room for the next errors to grow a little (a counter's digits) without growing the buffer again.
            text.reserve(size + size / 4);
        }
        let mut ends = [0; 4];
        for (part, end) in parts.iter().zip(&mut ends) {
            text.push_str(part);
            *end = text.len();
        }
        if let Some(ring) = ring {
            ring.copy_into(text);
        }
        captured.level = level;
        captured.line = meta.line().unwrap_or(0);
        captured.ends = ends;
        captured.context = ring.map_or(0, |r| r.len());
        captured.repeat = ring.is_none();
        captured.site = site;
        captured
    }

    /// The event it raises.
    pub(super) fn event(&self) -> Event {
        if self.level == Level::Fatal {
            Event::LogFatal
        } else {
            Event::LogError
        }
    }

    /// The alert: subject from the message, body with the fields, call site, host and context lines; about the
    /// call site (`file:line`), so one alert per call site.
    fn to_alert(&self) -> Alert {
        let [m, f, fi, t] = self.ends;
        let text = &self.text;
        let (message, fields, file, target) = (&text[..m], &text[m..f], &text[f..fi], &text[fi..t]);
        let (level, line) = (self.level, self.line);
        let mut subject: String = message.chars().take(150).collect();
        if subject.is_empty() {
            subject = format!("{} in {target}", level.as_upper());
        }
        let mut body = String::with_capacity(text.len() + 200);
        let _ = writeln!(body, "{message}");
        if !fields.is_empty() {
            let _ = writeln!(body, "\nFields:{fields}");
        }
        let _ = writeln!(body, "\nAt {file}:{line} ({target})");
        let _ = writeln!(body, "Host: {}", crate::core::host::name());
        write_context(&mut body, self.context, text[t..].lines());
        if self.repeat {
            let _ = writeln!(
                body,
                "\n(Its log lines went with the alert from here just before it.)"
            );
        }
        Alert::new(self.event(), self.about(), level, subject, body)
    }

    /// What the alert is about: the call site, `file:line`.
    fn about(&self) -> String {
        let [_, f, fi, _] = self.ends;
        format!("{}:{}", &self.text[f..fi], self.line)
    }

    /// Unmarks the call site and keeps the buffer for the next error.
    fn recycle(self: Box<Self>) {
        super::repeat::taken(self.site);
        if self.text.capacity() <= BUFFER_MAX {
            let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
        }
    }
}

impl Later for Captured {
    /// Formats the alert and keeps the buffer for the next error.
    fn finish(self: Box<Self>) -> Alert {
        let alert = self.to_alert();
        self.recycle();
        alert
    }

    fn key(&self) -> Option<String> {
        Some(self.event().key(&self.about()))
    }

    fn discard(self: Box<Self>) {
        self.recycle();
    }
}

/// Appends `The N log lines before it:` and the lines, indented; nothing when there are none.
pub(super) fn write_context<'a>(
    body: &mut String,
    count: usize,
    lines: impl Iterator<Item = &'a str>,
) {
    if count == 0 {
        return;
    }
    let _ = writeln!(body, "\nThe {count} log lines before it:");
    for l in lines {
        let _ = writeln!(body, "  {l}");
    }
}

#[cfg(test)]
mod tests {
    use tracing::callsite::{Callsite, Identifier};
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    use super::*;

    struct Site;
    impl Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("the tests build their metadata by hand")
        }
    }
    static SITE: Site = Site;

    fn capture(level: Level, message: &str, fields: &str, ring: Option<&Ring>) -> Alert {
        let fieldset = FieldSet::new(&[], Identifier(&SITE));
        let meta = Metadata::new(
            "test",
            "app::db",
            tracing::Level::ERROR,
            Some("src/db.rs"),
            Some(42),
            None,
            fieldset,
            Kind::EVENT,
        );
        let captured = Captured::new(level, &meta, (message, fields), ring, 0);
        let key = captured.key();
        let alert = captured.finish();
        assert_eq!(
            key,
            Some(alert.key()),
            "the key is known before the alert is made"
        );
        alert
    }

    #[test]
    fn the_alert_carries_message_fields_site_and_context() {
        let mut ring = Ring::new(3);
        for l in ["one\n", "two\n"] {
            ring.push(l);
        }
        let a = capture(Level::Error, "Disk full", " path=/var", Some(&ring));
        assert_eq!((a.event, a.severity), (Event::LogError, Level::Error));
        assert_eq!(a.about, "src/db.rs:42");
        assert_eq!(a.subject, "Disk full");
        let host = crate::core::host::name();
        assert_eq!(
            a.body,
            format!(
                "Disk full\n\nFields: path=/var\n\nAt src/db.rs:42 (app::db)\nHost: {host}\n\n\
                 The 2 log lines before it:\n  one\n  two\n"
            )
        );
    }

    #[test]
    fn an_empty_message_names_the_level_and_target_and_fatal_is_its_own_event() {
        let a = capture(Level::Fatal, "", "", Some(&Ring::new(0)));
        assert_eq!(a.subject, "FATAL in app::db");
        assert_eq!(a.event, Event::LogFatal);
        assert!(!a.body.contains("log lines before it"), "{}", a.body);
    }

    #[test]
    fn a_repeat_carries_no_context_and_says_so() {
        let a = capture(Level::Error, "Disk full", "", None);
        assert!(!a.body.contains("log lines before it"), "{}", a.body);
        assert!(
            a.body
                .ends_with("\n(Its log lines went with the alert from here just before it.)\n"),
            "{}",
            a.body
        );
    }
}
