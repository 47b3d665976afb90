//! Checks as new visitors, against real servers on loopback: a server that stops accepting connections is down
//! at its next checks even while an old keep-alive connection still answers; each check's phase timings are
//! present, in order and add up to its total; a check names the phase it failed in; `source_address` binds
//! the check's socket.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::support::target_server::{Mode, TargetServer, TestCa, closed_port, self_signed};
use tend::monitor::check::{Checker, Outcome, Phase, Probe};
use tend::monitor::config::{MonitorConfig, TargetConfig};
use tend::monitor::scheduler::{Message, Scheduler};
use tend::monitor::tracker::{Event, State};
use tokio_util::sync::CancellationToken;

fn target(name: &str, url: String) -> TargetConfig {
    let mut t = TargetConfig::new(name);
    t.url = Some(url);
    t
}

async fn check(checker: &Checker, t: TargetConfig) -> Outcome {
    let config = MonitorConfig {
        interval: Duration::from_secs(5),
        timeout: Duration::from_millis(1500),
        target: vec![t],
        ..MonitorConfig::default()
    };
    assert_eq!(config.validate(), vec![]);
    let probe = Probe::new(&config.target[0], &config).expect("probe");
    checker.check(&probe).await
}

/// The next check report, within the deadline.
async fn next(
    rx: &mut tokio::sync::mpsc::Receiver<Message>,
    deadline: tokio::time::Instant,
) -> Box<tend::monitor::Report> {
    loop {
        let m = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("within 20 s")
            .expect("open");
        if let Message::Checked(r) = m {
            return r;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_accepting_is_down_at_its_next_checks_whatever_old_connections_say() {
    let server = TargetServer::start().await;
    let mut pooled = target("pooled", server.url("/"));
    pooled.reuse_connections = Some(true);
    let config = MonitorConfig {
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        failure_threshold: 2,
        target: vec![target("fresh", server.url("/")), pooled],
        ..MonitorConfig::default()
    };
    assert_eq!(config.validate(), vec![]);
    let bound = config.interval * config.failure_threshold + config.timeout;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let checker = Checker::new(&config).expect("checker");
    let scheduler = Scheduler::new(&config, checker, Vec::new(), tx).expect("scheduler");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(scheduler.run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut up = [false, false];
    while up != [true, true] {
        let r = next(&mut rx, deadline).await;
        up[r.index] |= r.state.state == State::Up;
    }
    // The pooled target holds a keep-alive connection now; the listener goes away.
    server.stop_accepting();
    let closed = Instant::now();
    let mut pooled_up_after = 0;
    let down_after = loop {
        let r = next(&mut rx, deadline).await;
        if r.index == 1 && r.outcome.up {
            pooled_up_after += 1;
        }
        if r.index == 0 {
            if !r.outcome.up {
                assert_eq!(r.outcome.reason, "connect: connection refused");
                assert_eq!(r.outcome.failed_phase, Some(Phase::Connect));
            }
            if matches!(r.event, Some(Event::MonitorDown { .. })) {
                break closed.elapsed();
            }
        }
    };
    assert!(
        down_after <= bound,
        "down after {down_after:?}, bound failure_threshold × interval + timeout = {bound:?}"
    );
    // Meanwhile the pooled check still says up: what reuse_connections hides.
    while pooled_up_after < 2 {
        let r = next(&mut rx, deadline).await;
        if r.index == 1 {
            assert!(
                r.outcome.up,
                "the kept connection still answers: {:?}",
                r.outcome
            );
            pooled_up_after += 1;
        }
    }
    shutdown.cancel();
    running.await.expect("scheduler stops");
}

#[tokio::test]
async fn phase_timings_are_present_in_order_and_add_up_to_the_total() {
    let ca = TestCa::new();
    let pem = ca.pem();
    let checker = Checker::with_extra_roots(Some((pem.as_bytes(), "test CA"))).expect("checker");
    let (chain, key) = ca.leaf_expiring_in(90);
    let server = TargetServer::start_tls(chain, key).await;
    server.set(Mode::Slow(Duration::from_millis(80)));
    let o = check(&checker, target("tls", server.url("/"))).await;
    assert!(o.up, "{o:?}");
    let p = o.phases;
    assert_eq!(p.total(), o.response_time, "the phases add up to the total");
    assert!(p.get(Phase::Connect) > Duration::ZERO, "{p:?}");
    assert!(p.get(Phase::Tls) > Duration::ZERO, "{p:?}");
    assert!(
        p.get(Phase::Ttfb) >= Duration::from_millis(80),
        "the server's 80 ms count as time to first byte: {p:?}"
    );
    assert!(
        p.get(Phase::Connect) < Duration::from_millis(80)
            && p.get(Phase::Tls) < Duration::from_millis(80),
        "the wait is not put on connect or TLS: {p:?}"
    );
    assert_eq!(o.failed_phase, None);
    assert_eq!(o.cert_expiry_days, Some(90));
    let json = serde_json::to_string(&p).expect("json");
    let keys: Vec<usize> = [
        "\"dns\"",
        "\"connect\"",
        "\"tls\"",
        "\"ttfb\"",
        "\"transfer\"",
        "\"total\"",
    ]
    .iter()
    .map(|k| json.find(k).unwrap_or_else(|| panic!("{k} in {json}")))
    .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "phases in order: {json}"
    );

    // Plain HTTP has no TLS phase; each failure names its phase.
    let plain = TargetServer::start().await;
    let o = check(&checker, target("plain", plain.url("/"))).await;
    assert!(o.up && o.phases.get(Phase::Tls) == Duration::ZERO, "{o:?}");
    let port = closed_port().await;
    let o = check(
        &checker,
        target("refused", format!("http://127.0.0.1:{port}/")),
    )
    .await;
    assert_eq!(
        (o.failed_phase, o.reason.as_str()),
        (Some(Phase::Connect), "connect: connection refused")
    );
    assert_eq!(o.phases.get(Phase::Ttfb), Duration::ZERO);
    let (chain, key) = self_signed();
    let untrusted = TargetServer::start_tls(chain, key).await;
    let o = check(&checker, target("untrusted", untrusted.url("/"))).await;
    assert_eq!(o.failed_phase, Some(Phase::Tls), "{o:?}");
    assert!(
        o.reason.starts_with("tls: certificate not trusted"),
        "{o:?}"
    );
    plain.set(Mode::Slow(Duration::from_secs(5)));
    let o = check(&checker, target("slow", plain.url("/"))).await;
    assert_eq!(o.failed_phase, Some(Phase::Ttfb), "{o:?}");
    assert_eq!(o.phases.total(), o.response_time);
}

#[tokio::test]
async fn source_address_binds_the_checks_socket() {
    let server = TargetServer::start().await;
    let refused: IpAddr = "127.0.0.2".parse().expect("ip");
    server.refuse_from(refused);
    let checker = Checker::with_extra_roots(None).expect("checker");
    let mut from_one = target("from-1", server.url("/"));
    from_one.source_address = Some("127.0.0.1".parse().expect("ip"));
    let o = check(&checker, from_one).await;
    assert!(o.up, "{o:?}");
    let mut from_two = target("from-2", server.url("/"));
    from_two.source_address = Some(refused);
    let o = check(&checker, from_two).await;
    assert!(!o.up, "the server refuses 127.0.0.2: {o:?}");
    assert_eq!(o.failed_phase, Some(Phase::Ttfb), "{o:?}");
    assert!(server.peers().contains(&refused), "{:?}", server.peers());
    assert!(server.peers().contains(&"127.0.0.1".parse().expect("ip")));

    // An address this machine does not have: refused locally, before any packet is sent.
    let mut foreign = target("foreign", server.url("/"));
    foreign.source_address = Some("192.0.2.1".parse().expect("ip"));
    let o = check(&checker, foreign).await;
    assert!(
        o.reason
            .starts_with("connect: cannot use source address 192.0.2.1"),
        "{o:?}"
    );
}
