//! Logger and alerting benchmarks.
//!
//! - `info!` through tend's layer (console line + ring buffer of context) against `tracing_subscriber::fmt`
//!   alone writing the same kind of line, both into a sink: the ratio is the cost of tend's extras.
//! - `error!` through the layer while the SMTP server is a black hole (accepts TCP, never answers): the
//!   caller's latency, which must not depend on delivery. Percentiles are printed after criterion's means.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tend::alert::{AlertConfig, Alerter};
use tend::log::{AlertLayer, Console, Level, LogConfig, LogFormat};
use tend::metrics::Metrics;
use tend::store::Store;
use tracing_subscriber::prelude::*;

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

fn error_latency(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (alerter, _hole) = alerter_to_black_hole(dir.path());
    let layer = AlertLayer::new(alerter.clone(), &LogConfig::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("error! with SMTP black hole", |b| {
            b.iter(|| tracing::error!(code = 503, "Upstream failed"))
        });
        // Per-call latency percentiles over 20,000 calls, with gaps so the background writer keeps up as it
        // would in a real program.
        let mut samples = Vec::with_capacity(20_000);
        for i in 0..20_000u32 {
            let start = Instant::now();
            tracing::error!(code = 503, i, "Upstream failed");
            samples.push(start.elapsed());
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        samples.sort();
        let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "error! latency with an SMTP black hole: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
            p(0.5),
            p(0.99),
            p(0.999),
            samples[samples.len() - 1]
        );
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = info_line, error_latency
}
criterion_main!(benches);
