//! What an error log becomes. The caller's thread copies what it saw (message, fields, call site and the context
//! lines) into one buffer sized up front; the alert thread formats the alert from it. So `error!` costs the
//! caller one allocation and a copy, not the formatting of a mail.

use std::fmt::Write as _;

use tracing::Metadata;

use super::Level;
use super::ring::Ring;
use crate::alert::Alert;
use crate::core::Event;

/// An error log as its caller saw it, in one buffer: message, fields, file, target, then the context lines
/// (each ending in `\n`).
pub(super) struct Captured {
    level: Level,
    line: u32,
    text: String,
    /// Where the message, fields, file and target end in `text`.
    ends: [usize; 4],
    context: usize,
}

impl Captured {
    /// Copies the event and the ring's lines.
    pub(super) fn new(
        level: Level,
        meta: &Metadata<'_>,
        message: &str,
        fields: &str,
        ring: &Ring,
    ) -> Captured {
        let file = meta.file().unwrap_or("?");
        let target = meta.target();
        let parts = [message, fields, file, target];
        let size = parts.iter().map(|p| p.len()).sum::<usize>() + ring.copied_len();
        let mut text = String::with_capacity(size);
        let mut ends = [0; 4];
        for (part, end) in parts.iter().zip(&mut ends) {
            text.push_str(part);
            *end = text.len();
        }
        ring.copy_into(&mut text);
        Captured {
            level,
            line: meta.line().unwrap_or(0),
            text,
            ends,
            context: ring.len(),
        }
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
    pub(super) fn into_alert(self) -> Alert {
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
        Alert::new(self.event(), format!("{file}:{line}"), level, subject, body)
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

    fn capture(level: Level, message: &str, fields: &str, ring: &Ring) -> Alert {
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
        Captured::new(level, &meta, message, fields, ring).into_alert()
    }

    #[test]
    fn the_alert_carries_message_fields_site_and_context() {
        let mut ring = Ring::new(3);
        for l in ["one\n", "two\n"] {
            ring.push(l);
        }
        let a = capture(Level::Error, "Disk full", " path=/var", &ring);
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
        let a = capture(Level::Fatal, "", "", &Ring::new(0));
        assert_eq!(a.subject, "FATAL in app::db");
        assert_eq!(a.event, Event::LogFatal);
        assert!(!a.body.contains("log lines before it"), "{}", a.body);
    }
}
