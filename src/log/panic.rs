//! The panic hook: a panic anywhere (a thread, a tokio task, `main`) becomes a `fatal` alert with its message,
//! location, thread, backtrace and the log lines before it.
//!
//! The backtrace is captured on the panicking thread (a stack walk, no symbols) and symbolised on the alert
//! thread. The alert is written to the outbox (a bounded wait for the write, not for delivery) before the
//! previous hook runs; then the panic goes on to unwind or abort exactly as it would have, and the running
//! alerter, or the next one started on the same store, delivers it.
//!
//! A panic inside the alerting path cannot recurse or hang: the hook runs once at a time per thread (a
//! thread-local guard), never waits on the alert thread from the alert thread, never waits for the context
//! ring's lock from inside the layer (whose thread may hold it), and logs its own line with `alert = false`.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::fmt::Write as _;
use std::panic::PanicHookInfo;
use std::sync::{Mutex, Once, TryLockError};
use std::time::Duration;

use super::capture::write_context;
use super::installed::INSTALLED;
use super::layer::inside_layer;
use super::ring::Ring;
use crate::alert::Alert;
use crate::core::Event;
use crate::core::Level;

/// How long a panicking thread waits for its alert to reach the outbox.
pub const PANIC_RECORD_WAIT: Duration = Duration::from_secs(5);

/// Frames of a backtrace kept in the alert.
const MAX_FRAMES: usize = 40;

thread_local! {
    /// Set while this thread runs the hook.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Installs the panic hook (once; later calls do nothing). It alerts through the first
/// [`super::AlertLayer`] created, whenever that is; before there is one, it only runs the previous hook.
pub fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            previous(info);
        }));
    });
}

/// Turns the panic into an alert and waits (bounded) until it is in the outbox.
fn report(info: &PanicHookInfo<'_>) {
    // Already in the hook on this thread, or the thread's locals are gone: leave it to the previous hook.
    if IN_HOOK.try_with(|h| h.replace(true)) != Ok(false) {
        return;
    }
    if let Some(installed) = INSTALLED.get() {
        let panic = Panic::new(info, Backtrace::force_capture(), &installed.ring);
        if !inside_layer() {
            tracing::error!(
                fatal = true,
                alert = false,
                event = Event::Panic.name(),
                about = %panic.location,
                thread = %panic.thread,
                "Panic: {}",
                panic.message
            );
        }
        installed
            .alerter
            .send_later(Event::Panic, Box::new(move || panic.into_alert()));
        installed.alerter.wait_recorded(PANIC_RECORD_WAIT);
    }
    IN_HOOK.set(false);
}

/// A panic as its thread saw it.
struct Panic {
    message: String,
    location: String,
    thread: String,
    context: String,
    lines: usize,
    backtrace: Backtrace,
}

impl Panic {
    fn new(info: &PanicHookInfo<'_>, backtrace: Backtrace, ring: &Mutex<Ring>) -> Panic {
        let location = info
            .location()
            .map_or_else(|| "?".to_string(), |l| l.to_string());
        let thread = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_string();
        let (context, lines) = context(ring, inside_layer());
        Panic {
            message: message(info.payload()).to_string(),
            location,
            thread,
            context,
            lines,
            backtrace,
        }
    }

    /// The alert (run on the alert thread: symbolising the backtrace happens here).
    fn into_alert(self) -> Alert {
        let first = self.message.lines().next().unwrap_or("");
        let subject: String = format!("Panic: {first}").chars().take(150).collect();
        let mut body = String::new();
        let _ = writeln!(body, "{}", self.message);
        let _ = writeln!(body, "\nAt {} (thread '{}')", self.location, self.thread);
        let _ = writeln!(body, "Host: {}", crate::core::host::name());
        let _ = writeln!(body, "\nBacktrace, innermost first:");
        body.push_str(&frames(&self.backtrace));
        write_context(&mut body, self.lines, self.context.lines());
        Alert::new(Event::Panic, self.location, Level::Fatal, subject, body)
    }
}

/// A panic's message: `panic!`'s text, or what std prints for a payload of another type.
fn message(payload: &(dyn std::any::Any + Send)) -> &str {
    match payload.downcast_ref::<&str>() {
        Some(s) => s,
        None => payload
            .downcast_ref::<String>()
            .map_or("Box<dyn Any>", String::as_str),
    }
}

/// The ring's lines; none when this thread `may_hold` its lock (the panic came from inside the layer) and
/// the lock is taken.
fn context(ring: &Mutex<Ring>, may_hold: bool) -> (String, usize) {
    let guard = if may_hold {
        match ring.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    } else {
        Some(ring.lock().unwrap_or_else(|p| p.into_inner()))
    };
    let Some(ring) = guard else {
        return (String::new(), 0);
    };
    let mut out = String::with_capacity(ring.copied_len());
    ring.copy_into(&mut out);
    (out, ring.len())
}

/// The backtrace from the frame that panicked down to where its thread began, numbered from 0.
fn frames(backtrace: &Backtrace) -> String {
    if backtrace.status() != BacktraceStatus::Captured {
        return "  (none: backtraces are not supported here)\n".into();
    }
    trim(&backtrace.to_string())
}

/// One frame of std's backtrace text: its symbol and its `at file:line` lines.
struct Frame<'a> {
    symbol: &'a str,
    at: Vec<&'a str>,
}

/// Frames between a panic's start and the frame that called `panic!`: the hook, std's panic machinery.
const PLUMBING: &[&str] = &[
    "tend::log::panic::",
    "std::backtrace::",
    "<alloc::boxed::Box<dyn for<",
    "std::panicking::",
    "std::sys::backtrace::__rust_end_short_backtrace",
    "__rustc::rust_begin_unwind",
    "rust_begin_unwind",
    "core::panicking::",
];

/// Keeps the frames std's short backtraces show (after the panic machinery, before the thread's start).
fn trim(text: &str) -> String {
    let mut all: Vec<Frame<'_>> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        match t.split_once(": ") {
            Some((n, symbol)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                all.push(Frame { symbol, at: vec![] });
            }
            _ => {
                if let Some(frame) = all.last_mut() {
                    frame.at.push(t);
                }
            }
        }
    }
    let mut start = all
        .iter()
        .position(|f| f.symbol.contains("__rust_end_short_backtrace"))
        .map_or(0, |i| i + 1);
    while all
        .get(start)
        .is_some_and(|f| PLUMBING.iter().any(|p| f.symbol.starts_with(p)))
    {
        start += 1;
    }
    let end = all[start..]
        .iter()
        .position(|f| f.symbol.contains("__rust_begin_short_backtrace"))
        .map_or(all.len(), |i| start + i);
    let kept = &all[start..end];
    let mut out = String::new();
    for (i, frame) in kept.iter().take(MAX_FRAMES).enumerate() {
        let _ = writeln!(out, "  {i:>3}: {}", frame.symbol);
        for at in &frame.at {
            let _ = writeln!(out, "         {at}");
        }
    }
    if kept.len() > MAX_FRAMES {
        let _ = writeln!(out, "  ... and {} more frames", kept.len() - MAX_FRAMES);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREAD: &str = "   0: tend::log::panic::report
             at ./src/log/panic.rs:60:20
   1: <alloc::boxed::Box<dyn for<'a, 'b> core::ops::function::Fn<(&'a std::panic::PanicHookInfo<'b>,), Output = ()> + core::marker::Sync + core::marker::Send> as core::ops::function::Fn<(&std::panic::PanicHookInfo,)>>::call
             at /rustc/x/library/alloc/src/boxed.rs:2254:9
   2: std::panicking::panic_with_hook
   3: std::panicking::panic_handler::{closure#0}
   4: std::sys::backtrace::__rust_end_short_backtrace::<std::panicking::panic_handler::{closure#0}, !>
             at /rustc/x/library/std/src/sys/backtrace.rs:182:18
   5: __rustc::rust_begin_unwind
   6: core::panicking::panic_fmt
             at /rustc/x/library/core/src/panicking.rs:80:14
   7: core::option::unwrap_failed
             at /rustc/x/library/core/src/option.rs:2236:5
   8: app::explode
             at ./src/main.rs:3:44
   9: core::ops::function::FnOnce::call_once
  10: std::sys::backtrace::__rust_begin_short_backtrace
             at /rustc/x/library/std/src/sys/backtrace.rs:166:18
  11: std::thread::lifecycle::spawn_unchecked::{{closure}}::{{closure}}
  12: start_thread
";

    #[test]
    fn a_backtrace_starts_where_the_panic_was_raised_and_ends_where_the_thread_began() {
        assert_eq!(
            trim(THREAD),
            "    0: core::option::unwrap_failed
         at /rustc/x/library/core/src/option.rs:2236:5
    1: app::explode
         at ./src/main.rs:3:44
    2: core::ops::function::FnOnce::call_once
"
        );
    }

    #[test]
    fn without_std_markers_the_hook_and_panic_frames_are_still_dropped() {
        let text = "   0: tend::log::panic::report\n   1: std::panicking::panic_with_hook\n   \
                    2: core::panicking::panic_fmt\n   3: app::run\n   4: main\n";
        assert_eq!(trim(text), "    0: app::run\n    1: main\n");
    }

    #[test]
    fn a_message_is_read_from_either_payload() {
        assert_eq!(message(&"static"), "static");
        assert_eq!(message(&String::from("formatted")), "formatted");
        assert_eq!(message(&42), "Box<dyn Any>");
    }

    #[test]
    fn a_long_backtrace_is_cut() {
        let text: String = (0..50).map(|i| format!("  {i}: app::f{i}\n")).collect();
        let out = trim(&text);
        assert!(out.starts_with("    0: app::f0\n"), "{out}");
        assert!(
            out.ends_with("   39: app::f39\n  ... and 10 more frames\n"),
            "{out}"
        );
    }

    #[test]
    fn the_alert_has_message_location_thread_backtrace_and_context() {
        let mut ring = Ring::new(5);
        ring.push("INFO    loading the ledger\n");
        let panic = Panic {
            message: "index out of bounds\nsecond line".into(),
            location: "src/ledger.rs:12:5".into(),
            thread: "worker".into(),
            context: "INFO    loading the ledger\n".into(),
            lines: 1,
            backtrace: Backtrace::force_capture(),
        };
        let a = panic.into_alert();
        assert_eq!((a.event, a.severity), (Event::Panic, Level::Fatal));
        assert_eq!(a.about, "src/ledger.rs:12:5");
        assert_eq!(a.subject, "Panic: index out of bounds");
        assert!(
            a.body.starts_with(
                "index out of bounds\nsecond line\n\nAt src/ledger.rs:12:5 (thread 'worker')\n"
            ),
            "{}",
            a.body
        );
        assert!(
            a.body.contains("\nBacktrace, innermost first:\n    0: "),
            "{}",
            a.body
        );
        assert!(
            a.body
                .ends_with("The 1 log lines before it:\n  INFO    loading the ledger\n"),
            "{}",
            a.body
        );
    }

    #[test]
    fn inside_the_layer_a_held_ring_gives_no_context_instead_of_waiting() {
        let ring = Mutex::new(Ring::new(2));
        ring.lock().unwrap_or_else(|p| p.into_inner()).push("a");
        assert_eq!(context(&ring, false), ("a\n".to_string(), 1));
        assert_eq!(context(&ring, true), ("a\n".to_string(), 1));
        let _held = ring.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(context(&ring, true), (String::new(), 0));
    }
}
