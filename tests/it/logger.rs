//! The proactive logger end to end, mailed through a real SMTP server (aiosmtpd): panics in a thread, in a tokio
//! task and inside the alerting path itself, and records of the `log` crate.
//!
//! A panic hook, a global subscriber and the `log` bridge belong to a whole process, so each test runs its
//! program in a child process: the test re-executes this test binary, asking for itself alone, with the SMTP
//! port and a store path in the environment. In the child, the same test runs the program and asserts what the
//! program itself can see; in the parent (a normal run), it starts the servers, runs the child and reads the
//! mails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tend::alert::{Alert, AlertConfig, Alerter};
use tend::core::Event;
use tend::log::{AlertLayer, Console, Level, LogConfig, LogFormat};
use tend::metrics::Metrics;
use tend::store::Store;
use tracing_subscriber::prelude::*;

use crate::support::smtp::SmtpSink;

const PORT: &str = "TEND_IT_LOGGER_SMTP_PORT";
const STORE: &str = "TEND_IT_LOGGER_STORE";

/// In the child: the SMTP port and the store, from the parent.
fn child() -> Option<(u16, PathBuf)> {
    let port = std::env::var(PORT).ok()?.parse().ok()?;
    Some((port, std::env::var_os(STORE)?.into()))
}

fn alert_config(port: u16, group_wait: &str) -> AlertConfig {
    toml::from_str(&format!(
        "group_wait = \"{group_wait}\"\n[[notifier]]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\nfrom = \"tend@example.com\"\nto = [\"ops@example.com\"]\ntimeout = \"5s\"\n"
    ))
    .expect("alert config")
}

/// The child's logging, as a program sets it up: an alerter, the layer as the global subscriber (5 context
/// lines, console on), and the panic hook.
fn install_logging(port: u16, store: &Path, group_wait: &str) -> Alerter {
    let store = Store::open(store).expect("store");
    let alerter =
        Alerter::start(&alert_config(port, group_wait), store, &Metrics::new()).expect("alerter");
    let log = LogConfig {
        context_lines: 5,
        ..LogConfig::default()
    };
    let console = Console {
        level: Level::Info,
        format: LogFormat::Text,
    };
    let layer = AlertLayer::new(alerter.clone(), &log).with_console(console);
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("the child's first subscriber");
    tend::log::install_panic_hook();
    alerter
}

/// Runs `test` (a test of this module) alone in a child process of this test binary.
fn run_child(test: &str, sink: &SmtpSink, store: &Path) -> Output {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let exe = std::env::current_exe().expect("the test binary's path");
    Command::new(exe)
        .args([&format!("{module}::{test}"), "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(PORT, sink.port.to_string())
        .env(STORE, store)
        .output()
        .expect("the test binary runs")
}

/// A mail's subject, its header lines unfolded.
fn subject_of(mail: &str) -> String {
    let mut subject: Option<String> = None;
    for line in mail.lines().take_while(|l| !l.is_empty()) {
        match &mut subject {
            Some(s) if line.starts_with([' ', '\t']) => s.push_str(line),
            Some(_) => break,
            None => subject = line.strip_prefix("Subject: ").map(str::to_string),
        }
    }
    subject.unwrap_or_default()
}

/// The mail whose subject is `subject`, its body decoded when it is quoted-printable (long backtrace lines).
fn mail(mails: &[String], subject: &str) -> String {
    let m = mails
        .iter()
        .find(|m| subject_of(m) == subject)
        .unwrap_or_else(|| panic!("no mail with the subject {subject:?} among {mails:#?}"));
    let m = m.replace("\r\n", "\n");
    let Some((head, body)) = m.split_once("\n\n") else {
        return m;
    };
    if !head.contains("Content-Transfer-Encoding: quoted-printable") {
        return m;
    }
    format!("{head}\n\n{}", quoted_printable(body))
}

/// Decodes a quoted-printable body: `=` at a line end joins lines, `=XX` is a byte.
fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'=' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first frame of the mail's backtrace.
fn top_frame(mail: &str) -> &str {
    let mut lines = mail
        .lines()
        .skip_while(|l| *l != "Backtrace, innermost first:");
    lines.next();
    lines
        .next()
        .unwrap_or_else(|| panic!("no backtrace in {mail}"))
}

#[inline(never)]
fn explode_in_thread() {
    tend::log::info!(batch = 7, "Posting batch 7 to the ledger");
    panic!("the ledger is corrupt at entry 7");
}

#[inline(never)]
async fn explode_in_task() {
    tend::log::info!("Settling the day's payments");
    tokio::task::yield_now().await;
    panic!("settlement failed: no counterparty");
}

#[test]
fn a_panic_in_a_thread_and_in_a_task_is_one_fatal_mail_each() {
    if let Some((port, store)) = child() {
        let alerter = install_logging(port, &store, "100ms");
        tend::log::info!("Night run started");
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(explode_in_thread)
            .expect("spawn");
        assert!(thread.join().is_err(), "the thread panicked as before");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let task = rt.block_on(async { tokio::spawn(explode_in_task()).await });
        assert!(
            task.is_err_and(|e| e.is_panic()),
            "the task panicked as before"
        );
        tend::log::info!("Night run over");
        assert_eq!(alerter.flush(Duration::from_secs(20)).undelivered, 0);
        return;
    }
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_child(
        "a_panic_in_a_thread_and_in_a_task_is_one_fatal_mail_each",
        &sink,
        &dir.path().join("tend.db"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed: {stderr}");
    assert_eq!(
        stderr.matches("panicked at").count(),
        2,
        "the previous hook still reports each panic once: {stderr}"
    );
    // The child flushed before it exited: every mail is in.
    let mails = sink.wait_for(2);
    assert_eq!(mails.len(), 2, "one mail per panic: {mails:#?}");

    let m = mail(&mails, "FATAL: Panic: the ledger is corrupt at entry 7");
    assert!(m.contains("thread 'ledger'"), "{m}");
    assert!(
        m.contains("tests/it/logger.rs:"),
        "the panic's location: {m}"
    );
    assert!(
        top_frame(&m).contains("logger::explode_in_thread"),
        "top frame: {m}"
    );
    assert!(m.contains("Posting batch 7 to the ledger batch=7"), "{m}");
    assert!(m.contains("Night run started"), "{m}");

    let m = mail(&mails, "FATAL: Panic: settlement failed: no counterparty");
    assert!(m.contains("(thread 'tokio-"), "a runtime worker: {m}");
    assert!(
        top_frame(&m).contains("logger::explode_in_task"),
        "top frame: {m}"
    );
    assert!(m.contains("Settling the day's payments"), "{m}");
    assert!(
        m.contains("Panic: the ledger is corrupt at entry 7"),
        "the first panic's own log line is context of the second: {m}"
    );
}

#[test]
fn a_burst_of_one_error_is_one_mail_with_the_count_and_the_first_ones_lines() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("tend.db")).expect("store");
    let alerter =
        Alerter::start(&alert_config(sink.port, "1s"), store, &Metrics::new()).expect("alerter");
    let log = LogConfig {
        context_lines: 3,
        ..LogConfig::default()
    };
    let subscriber = tracing_subscriber::registry().with(AlertLayer::new(alerter.clone(), &log));
    tracing::subscriber::with_default(subscriber, || {
        tend::log::info!("Opening the payment pool");
        for attempt in 0..5000 {
            tend::log::error!(attempt, "Cannot reach the payment service");
        }
    });
    assert_eq!(alerter.flush(Duration::from_secs(20)).undelivered, 0);
    let mails = sink.wait_for(1);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let m = mail(
        &mails,
        "ERROR: Cannot reach the payment service (and 4999 more like this)",
    );
    assert!(
        m.contains("Fields: attempt=0\n"),
        "the first one's text: {m}"
    );
    assert!(
        m.contains("INFO    Opening the payment pool"),
        "its lines: {m}"
    );
    assert!(m.contains("This happened 5000 times"), "{m}");
    assert!(!m.contains("went with the alert"), "{m}");
}

/// A module written against `log`, as a dependency would be.
mod bank {
    pub fn transfer(id: u32) {
        log::info!("Connecting to the bank for transfer {id}");
        log::info!(target: "notice", "Transfer {id} submitted");
        log::debug!("Waiting for the bank's answer");
        log::error!("The bank refused transfer {id}: insufficient funds");
    }

    pub fn ledger() {
        log::error!(target: "fatal", "The ledger cannot be read");
    }
}

#[test]
fn a_log_record_from_a_dependency_is_mailed_with_its_call_site() {
    if let Some((port, store)) = child() {
        let alerter = install_logging(port, &store, "100ms");
        tend::log::bridge::install().expect("no other `log` logger in the child");
        bank::transfer(42);
        bank::ledger();
        assert_eq!(alerter.flush(Duration::from_secs(20)).undelivered, 0);
        return;
    }
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_child(
        "a_log_record_from_a_dependency_is_mailed_with_its_call_site",
        &sink,
        &dir.path().join("tend.db"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed: {stderr}");
    let mails = sink.wait_for(2);
    assert_eq!(mails.len(), 2, "{mails:#?}");

    let m = mail(
        &mails,
        "ERROR: The bank refused transfer 42: insufficient funds",
    );
    assert!(
        m.contains("tests/it/logger.rs:") && m.contains("(it::logger::bank)"),
        "the record's own call site and target: {m}"
    );
    assert!(!m.contains("log.target"), "no bridge fields: {m}");
    assert!(m.contains("Connecting to the bank for transfer 42"), "{m}");
    assert!(m.contains("NOTICE  Transfer 42 submitted"), "{m}");
    assert!(m.contains("DEBUG   Waiting for the bank's answer"), "{m}");

    let m = mail(&mails, "FATAL: The ledger cannot be read");
    assert!(m.contains("(fatal)"), "{m}");
}

/// A value whose `Debug` panics: logging it panics inside the layer, mid-alert.
struct Unprintable;

impl std::fmt::Debug for Unprintable {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("the account cannot be shown")
    }
}

#[test]
fn a_panic_inside_the_alerting_path_does_not_recurse_and_ends_the_program_as_before() {
    if let Some((port, store)) = child() {
        // Nothing is delivered by this process: the parent delivers from the outbox after it ended.
        let alerter = install_logging(port, &store, "1h");
        tend::log::info!("Reconciling accounts");
        // On the alert thread: finishing an alert panics. The hook must not wait for its own thread.
        let later = || -> Alert { panic!("cannot finish this alert") };
        alerter.send_later(Event::LogError, Box::new(later));
        assert!(
            alerter.wait_recorded(Duration::from_secs(20)),
            "the alert thread lives on"
        );
        // Inside the layer, on another thread: the event being alerted panics while it is read.
        let thread = std::thread::spawn(|| {
            tend::log::error!(account = ?Unprintable, "Cannot post to the account");
        });
        assert!(thread.join().is_err(), "the thread panicked as before");
        tend::log::info!("Still logging after the panics");
        tend::log::error!("An error after the panics");
        assert!(alerter.wait_recorded(Duration::from_secs(20)));
        // The same on this thread: the test fails, so the child exits as a failed test does.
        tend::log::error!(account = ?Unprintable, "Cannot post to the account");
        unreachable!("logging the unprintable account panics");
    }
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("tend.db");
    let out = run_child(
        "a_panic_inside_the_alerting_path_does_not_recurse_and_ends_the_program_as_before",
        &sink,
        &store_path,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(101),
        "a failed test's exit, not an abort: {stderr}"
    );
    assert!(
        !stderr.contains("panicked while processing panic"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("the account cannot be shown").count(),
        2,
        "each panic in the layer reported once by the previous hook: {stderr}"
    );
    assert_eq!(
        stderr.matches("cannot finish this alert").count(),
        2,
        "{stderr}"
    );

    // What the child wrote to its outbox before it ended, delivered by the next alerter on the same store.
    let store = Store::open(&store_path).expect("the child's store");
    let alerter =
        Alerter::start(&alert_config(sink.port, "1h"), store, &Metrics::new()).expect("alerter");
    assert_eq!(alerter.flush(Duration::from_secs(20)).undelivered, 0);
    let mails = sink.wait_for(3);
    assert_eq!(mails.len(), 3, "{mails:#?}");
    let m = mail(
        &mails,
        "FATAL: Panic: the account cannot be shown (and 1 more like this)",
    );
    assert!(m.contains("Reconciling accounts"), "{m}");
    assert!(m.contains("This happened 2 times"), "{m}");
    let m = mail(&mails, "FATAL: Panic: cannot finish this alert");
    assert!(m.contains("thread 'tend-alert'"), "{m}");
    mail(&mails, "ERROR: An error after the panics");
}
