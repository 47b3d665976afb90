//! Logger and alerting benchmarks.
//!
//! - `info!` through tend's layer (console line + ring buffer of context) against `tracing_subscriber::fmt`
//!   alone writing the same kind of line, both into a sink: the ratio is the cost of tend's extras.
//! - `error!` through the layer while the SMTP server is a black hole (accepts TCP, never answers): the
//!   caller's latency, which must not depend on delivery. Two loops of 20,000 calls each, every call timed: one
//!   paced (a 200 µs pause every 100 calls, as a program that logs in bursts) and one without pauses (every
//!   call queued while the alert thread works on the ones before). Each loop starts on a fresh alerter after
//!   1,000 unmeasured calls, and the alert thread's backlog is written to the outbox between loops. Printed per
//!   loop: mean, p50, p99, p99.9 and max, and what the calling thread went through (page faults, times it was
//!   preempted), with the load average, so a noisy machine shows in the output. The same two loops again with
//!   `log::error!` through the bridge, where every record copies its context lines (a burst of `error!` from one
//!   call site copies them once per look of the alert thread).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tend::alert::{AlertConfig, Alerter};
use tend::log::{AlertLayer, Console, Level, LogConfig, LogFormat};
use tend::metrics::Metrics;
use tend::store::Store;
use tracing_subscriber::prelude::*;

const CALLS: usize = 20_000;
const WARM_UP: usize = 1_000;

fn alerter_to_black_hole(dir: &std::path::Path) -> (Alerter, std::net::TcpListener) {
    // Accepts connections (the kernel completes the handshake) but never reads or answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let config: AlertConfig = toml::from_str(&format!(
        "group_wait = \"1s\"\n[[notifier]]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"a@example.com\"\nto = [\"b@example.com\"]\ntimeout = \"30s\"\n"
    ))
    .unwrap();
    let store = Store::open(&dir.join("bench.db")).unwrap();
    (
        Alerter::start(&config, store, &Metrics::new()).unwrap(),
        hole,
    )
}

fn info_line(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (alerter, _hole) = alerter_to_black_hole(dir.path());
    let mut group = c.benchmark_group("info");
    {
        let fmt = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_ansi(false)
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(fmt, || {
            group.bench_function("tracing_subscriber::fmt", |b| {
                b.iter(|| tracing::info!(user = "alice", n = 42, "Request served"))
            });
        });
    }
    {
        let sink: tend::log::SharedWriter = Arc::new(Mutex::new(std::io::sink()));
        let console = Console {
            level: Level::Info,
            format: LogFormat::Text,
        };
        let layer = AlertLayer::new(alerter.clone(), &LogConfig::default())
            .with_console_writer(console, sink);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            group.bench_function("tend AlertLayer", |b| {
                b.iter(|| tracing::info!(user = "alice", n = 42, "Request served"))
            });
        });
    }
    group.finish();
}

/// What the calling thread went through: minor page faults and involuntary context switches so far.
fn thread_counters() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): state is the 1st, minflt the 8th.
    let faults = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let preempted = status
        .lines()
        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (faults, preempted)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// How the loop logs its error.
#[derive(Clone, Copy)]
enum Via {
    /// `tracing::error!`: repeats from one call site skip copying the context lines while one is queued.
    Tracing,
    /// `log::error!` through the bridge: every record carries its own copy of the context lines.
    Log,
}

fn log_error(via: Via, i: usize) {
    match via {
        Via::Tracing => tracing::error!(code = 503, i, "Upstream failed"),
        Via::Log => log::error!("Upstream failed: code 503, call {i}"),
    }
}

/// Times `CALLS` errors on a fresh alerter, after `WARM_UP` unmeasured ones; `pause` every 100.
fn error_loop(name: &str, via: Via, pause: Option<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let (alerter, _hole) = alerter_to_black_hole(dir.path());
    let layer = AlertLayer::new(alerter.clone(), &LogConfig::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    let mut samples = Vec::with_capacity(CALLS);
    let (mut faults, mut preempted) = (0, 0);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..WARM_UP {
            log_error(via, i);
        }
        assert!(alerter.wait_recorded(Duration::from_secs(60)));
        let before = thread_counters();
        for i in 0..CALLS {
            let start = Instant::now();
            log_error(via, i);
            samples.push(start.elapsed());
            if let Some(pause) = pause {
                if i % 100 == 99 {
                    std::thread::sleep(pause);
                }
            }
        }
        let after = thread_counters();
        (faults, preempted) = (after.0 - before.0, after.1 - before.1);
        assert!(alerter.wait_recorded(Duration::from_secs(60)));
    });
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "  {name:<36} mean {}, p50 {}, p99 {}, p99.9 {}, max {}; page faults {faults}, preempted {preempted} times",
        micros(mean),
        micros(p(0.5)),
        micros(p(0.99)),
        micros(p(0.999)),
        micros(samples[samples.len() - 1]),
    );
}

fn error_latency(c: &mut Criterion) {
    println!(
        "error! latency with an SMTP black hole, {CALLS} calls per loop after {WARM_UP} warm-up calls \
         (load average {}):",
        load_average()
    );
    let pause = Some(Duration::from_micros(200));
    error_loop("paced (200 µs pause every 100 calls):", Via::Tracing, pause);
    error_loop("without pauses:", Via::Tracing, None);
    tend::log::bridge::install().unwrap();
    error_loop("log::error!, paced:", Via::Log, pause);
    error_loop("log::error!, without pauses:", Via::Log, None);
    let dir = tempfile::tempdir().unwrap();
    let (alerter, _hole) = alerter_to_black_hole(dir.path());
    let layer = AlertLayer::new(alerter.clone(), &LogConfig::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("error! with SMTP black hole", |b| {
            b.iter(|| tracing::error!(code = 503, "Upstream failed"))
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = info_line, error_latency
}
criterion_main!(benches);
