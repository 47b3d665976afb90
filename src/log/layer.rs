//! [`AlertLayer`]: the `tracing` layer that prints console lines, keeps the ring of recent lines (every level,
//! debug too, even when not printed) and turns events at or above `alert_from` into alerts carrying them.
//! Records of the `log` crate arrive here too, through the bridge (`bridge.rs`), with their own call site.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::layer::Context;

use super::capture::Captured;
use super::config::{LogConfig, LogFormat};
use super::installed::{INSTALLED, Installed};
use super::ring::Ring;
use super::{bridge, repeat};
use crate::alert::Alerter;
use crate::core::Level;

/// The logger's level of a `tracing` event, reading the `notice`/`fatal` marks.
fn level_of(meta: &Metadata<'_>, marks: &Marks) -> Level {
    match *meta.level() {
        tracing::Level::TRACE | tracing::Level::DEBUG => Level::Debug,
        tracing::Level::INFO if marks.notice => Level::Notice,
        tracing::Level::INFO => Level::Info,
        tracing::Level::WARN => Level::Warning,
        tracing::Level::ERROR if marks.fatal => Level::Fatal,
        tracing::Level::ERROR => Level::Error,
    }
}
#[derive(Default)]
struct Marks {
    notice: bool,
    fatal: bool,
    no_alert: bool,
}

/// Collects an event's message and fields as `message key=value ...`.
struct Fields<'a> {
    message: &'a mut String,
    fields: &'a mut String,
    marks: Marks,
    /// A `log` record: its `log.*` fields are its call site, read from the normalised metadata instead.
    from_log: bool,
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            name if self.from_log && name.starts_with("log.") => {}
            name => {
                self.fields.push(' ');
                self.fields.push_str(name);
                self.fields.push('=');
                let _ = write!(self.fields, "{value:?}");
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if !(self.from_log && field.name().starts_with("log.")) {
            self.fields.push(' ');
            self.fields.push_str(field.name());
            self.fields.push('=');
            if value.is_empty() || value.contains([' ', '"', '=']) {
                let _ = write!(self.fields, "{value:?}");
            } else {
                self.fields.push_str(value);
            }
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "notice" => self.marks.notice = value,
            "fatal" => self.marks.fatal = value,
            "alert" => self.marks.no_alert = !value,
            _ => self.record_debug(field, &value),
        }
    }
}

/// Where console lines go.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    /// Lowest level printed.
    pub level: Level,
    /// Text or JSON lines.
    pub format: LogFormat,
}

/// A `tracing` layer that prints console lines (optional), keeps the ring buffer of recent lines, and turns
/// events at or above `alert_from` into alerts.
pub struct AlertLayer {
    alerter: Option<Alerter>,
    alert_from: Level,
    console: Option<Console>,
    writer: Option<SharedWriter>,
    ring: Arc<Mutex<Ring>>,
    ring_capacity: usize,
}

/// Where console lines go instead of stdout/stderr (benchmarks, tests, embedding programs).
pub type SharedWriter = Arc<Mutex<dyn std::io::Write + Send>>;

thread_local! {
    static BUFFERS: std::cell::RefCell<(String, String, String)> =
        const { std::cell::RefCell::new((String::new(), String::new(), String::new())) };
}

/// Dependencies whose debug events are not kept unless the console shows debug: they are chatty and rarely
/// what an alert needs.
const NOISY: &[&str] = &[
    "hyper",
    "h2",
    "rustls",
    "aws_",
    "reqwest",
    "tower",
    "axum",
    "lettre",
    "openssh",
    "mio",
    "tokio",
    "want",
    "runtime::resource",
];

impl AlertLayer {
    /// A layer that alerts through `alerter` as `config` says, without console output.
    pub fn new(alerter: Alerter, config: &LogConfig) -> AlertLayer {
        let ring = Arc::new(Mutex::new(Ring::new(config.context_lines)));
        let _ = INSTALLED.set(Installed {
            alerter: alerter.clone(),
            ring: ring.clone(),
        });
        AlertLayer {
            alerter: Some(alerter),
            alert_from: config.alert_from,
            console: None,
            writer: None,
            ring,
            ring_capacity: config.context_lines,
        }
    }

    /// A console-only layer (no alerting), for commands that run before or without a store.
    pub fn console_only(console: Console) -> AlertLayer {
        AlertLayer {
            alerter: None,
            alert_from: Level::Fatal,
            console: Some(console),
            writer: None,
            ring: Arc::new(Mutex::new(Ring::new(0))),
            ring_capacity: 0,
        }
    }

    /// Also prints console lines: text or JSON, warning and above on stderr.
    pub fn with_console(mut self, console: Console) -> AlertLayer {
        self.console = Some(console);
        self
    }

    /// Prints console lines into `writer` (all levels) instead of stdout/stderr.
    pub fn with_console_writer(mut self, console: Console, writer: SharedWriter) -> AlertLayer {
        self.console = Some(console);
        self.writer = Some(writer);
        self
    }

    fn keeps_debug(&self, target: &str) -> bool {
        self.console.is_some_and(|c| c.level == Level::Debug)
            || !NOISY.iter().any(|n| target.starts_with(n))
    }

    fn format_line(
        out: &mut String,
        format: LogFormat,
        level: Level,
        meta: &Metadata<'_>,
        message: &str,
        fields: &str,
    ) {
        out.clear();
        let now = humantime::format_rfc3339_millis(SystemTime::now());
        match format {
            LogFormat::Text => {
                let _ = write!(out, "{now} {:<7} {message}{fields}", level.as_upper());
            }
            LogFormat::Json => {
                let line = serde_json::json!({
                    "time": now.to_string(),
                    "level": level.as_str(),
                    "target": meta.target(),
                    "message": message,
                    "fields": fields.trim_start(),
                });
                out.push_str(&line.to_string());
            }
        }
        out.push('\n');
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for AlertLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if self.enabled_for(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.enabled_for(meta)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        BUFFERS.with(|cell| {
            // Busy: an event logged from inside this one (a field's Debug, the alerter's own warning).
            let Ok(mut bufs) = cell.try_borrow_mut() else {
                return;
            };
            let (message, fields, line) = &mut *bufs;
            message.clear();
            fields.clear();
            let normalized = event.normalized_metadata();
            let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
            let mut visitor = Fields {
                message,
                fields,
                marks: Marks::default(),
                from_log: normalized.is_some(),
            };
            event.record(&mut visitor);
            let mut marks = visitor.marks;
            if normalized.is_some() {
                (marks.notice, marks.fatal) = bridge::marks(meta.target());
            }
            let level = level_of(meta, &marks);
            let format = self.console.map_or(LogFormat::Text, |c| c.format);
            Self::format_line(line, format, level, meta, message, fields);
            if let Some(console) = self.console {
                if level >= console.level {
                    if let Some(w) = &self.writer {
                        let _ = w
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .write_all(line.as_bytes());
                    } else if level >= Level::Warning {
                        let _ = std::io::stderr().lock().write_all(line.as_bytes());
                    } else {
                        let _ = std::io::stdout().lock().write_all(line.as_bytes());
                    }
                }
            }
            if self.ring_capacity == 0 && self.alerter.is_none() {
                return;
            }
            let alert = level >= self.alert_from && !marks.no_alert && self.alerter.is_some();
            // `log` records have no static call site to mark (`repeat.rs`): they always go full.
            let site = match normalized {
                Some(_) => 0,
                None => std::ptr::from_ref(event.metadata()) as usize,
            };
            let now = std::time::Instant::now();
            let repeat = alert && repeat::queued(site, now);
            let captured = {
                let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
                let context = (!repeat).then_some(&*ring);
                let captured =
                    alert.then(|| Captured::new(level, meta, (message, fields), context, site));
                ring.push(line);
                captured
            };
            if let (Some(captured), Some(alerter)) = (captured, &self.alerter) {
                alerter.send_later(captured.event(), captured);
                if !repeat {
                    repeat::mark(site, now);
                }
            }
        });
    }
}

/// True while this thread is inside [`AlertLayer`]'s handling of an event (or its buffers are gone): a panic
/// there must not wait for the ring's lock, which this thread may hold.
pub(super) fn inside_layer() -> bool {
    BUFFERS
        .try_with(|cell| cell.try_borrow_mut().is_err())
        .unwrap_or(true)
}

impl AlertLayer {
    fn enabled_for(&self, meta: &Metadata<'_>) -> bool {
        let level = match *meta.level() {
            tracing::Level::TRACE => return false,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warning,
            tracing::Level::ERROR => Level::Error,
        };
        if level == Level::Debug && !self.keeps_debug(meta.target()) {
            return false;
        }
        // notice and fatal share info's and error's tracing level, so compare at that grain.
        let coarse = |l: Level| match l {
            Level::Notice => Level::Info,
            Level::Fatal => Level::Error,
            l => l,
        };
        let console = self.console.is_some_and(|c| level >= coarse(c.level));
        let alert = self.alerter.is_some() && level >= coarse(self.alert_from);
        console || self.ring_capacity > 0 || alert
    }
}
