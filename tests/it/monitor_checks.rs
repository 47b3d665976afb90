//! The monitor against real servers on loopback: every check kind, every misbehaviour, and the tracker's
//! state sequence across an outage (also across a restart in the middle of it).

use std::time::{Duration, Instant};

use crate::support::target_server::{Mode, TargetServer, TestCa, closed_port, self_signed};
use tend::monitor::check::{Checker, Outcome, Probe};
use tend::monitor::config::{MonitorConfig, StormConfig, TargetConfig};
use tend::monitor::scheduler::{Message, Scheduler};
use tend::monitor::storm::Alert;
use tend::monitor::tracker::{Event, State, TrackerState};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_millis(500);

fn monitor() -> MonitorConfig {
    MonitorConfig {
        interval: Duration::from_secs(5),
        timeout: TIMEOUT,
        ..MonitorConfig::default()
    }
}

fn http(url: String, edit: impl FnOnce(&mut TargetConfig)) -> TargetConfig {
    let mut t = TargetConfig::new("t");
    t.url = Some(url);
    edit(&mut t);
    t
}

async fn check_with(checker: &Checker, target: TargetConfig) -> Outcome {
    let mut config = monitor();
    config.target = vec![target];
    assert_eq!(config.validate(), vec![]);
    let probe = Probe::new(&config.target[0], &config).expect("probe");
    checker.check(&probe).await
}

async fn check(target: TargetConfig) -> Outcome {
    check_with(&Checker::with_extra_roots(None).expect("checker"), target).await
}

fn assert_down(o: &Outcome, reason_start: &str) {
    assert!(!o.up, "expected down, got {o:?}");
    assert!(
        o.reason.starts_with(reason_start),
        "reason {:?} does not start with {reason_start:?}",
        o.reason
    );
}

#[tokio::test]
async fn http_status_and_connections() {
    let server = TargetServer::start().await;
    let checker = Checker::with_extra_roots(None).expect("checker");
    let o = check_with(&checker, http(server.url("/"), |_| {})).await;
    assert!(o.up, "{o:?}");
    assert_eq!((o.reason.as_str(), o.status), ("HTTP 200", Some(200)));
    let o = check_with(
        &checker,
        http(server.url("/"), |t| {
            t.body_contains = Some("Welcome".into())
        }),
    )
    .await;
    assert!(o.up, "{o:?}");
    assert_eq!(server.connections(), 2, "each check is a new visitor");
    let pooled = |t: &mut TargetConfig| t.reuse_connections = Some(true);
    assert!(check_with(&checker, http(server.url("/"), pooled)).await.up);
    assert!(check_with(&checker, http(server.url("/"), pooled)).await.up);
    assert_eq!(
        server.connections(),
        3,
        "with reuse_connections the second pooled check reuses the first one's connection"
    );

    server.set(Mode::Status(503));
    let o = check_with(&checker, http(server.url("/"), |_| {})).await;
    assert_down(&o, "HTTP 503");
    assert_eq!(o.status, Some(503));
    let o = check(http(server.url("/"), |t| t.expect_status = vec![503])).await;
    assert!(o.up, "503 was expected: {o:?}");
    let o = check(http(server.url("/nothing"), |_| {})).await;
    assert_down(&o, "HTTP 404");
}

#[tokio::test]
async fn slow_and_hanging_servers_time_out_as_a_whole() {
    let server = TargetServer::start().await;
    server.set(Mode::Slow(TIMEOUT * 2));
    let started = Instant::now();
    let o = check(http(server.url("/"), |_| {})).await;
    assert_down(
        &o,
        "ttfb: timeout after 500ms waiting for the response headers",
    );
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );

    server.set(Mode::HangAfterHeaders);
    let started = Instant::now();
    let o = check(http(server.url("/"), |_| {})).await;
    assert_down(&o, "transfer: timeout after 500ms reading the body");
    assert_eq!(o.status, Some(200));
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );

    server.set(Mode::Ok);
    let o = check(http(server.url("/"), |t| {
        t.max_response_time = Some(Duration::from_nanos(1))
    }))
    .await;
    assert_down(&o, "slow: ");
}

#[tokio::test]
async fn an_endless_body_is_capped_not_a_hang() {
    let server = TargetServer::start().await;
    server.set(Mode::EndlessBody);
    let o = check(http(server.url("/"), |_| {})).await;
    assert!(
        o.up,
        "the status is fine and nothing is asked of the body: {o:?}"
    );
    let o = check(http(server.url("/"), |t| {
        t.body_contains = Some("Welcome".into())
    }))
    .await;
    assert_down(&o, "body lacks 'Welcome' (first 1 MiB read)");
    let o = check(http(server.url("/"), |t| {
        t.body_matches = Some("^x+$".into());
        t.max_body_bytes = 1000;
    }))
    .await;
    assert!(o.up, "the first 1000 bytes match: {o:?}");
}

#[tokio::test]
async fn redirects_are_bounded_and_loops_reported() {
    let server = TargetServer::start().await;
    let o = check(http(server.url("/loop/a"), |_| {})).await;
    assert_down(&o, &format!("redirect loop at {}", server.url("/loop/a")));
    let o = check(http(server.url("/redirect/3"), |t| {
        t.body_contains = Some("arrived".into())
    }))
    .await;
    assert!(o.up, "3 redirects are within the default bound: {o:?}");
    let o = check(http(server.url("/redirect/3"), |t| t.max_redirects = 2)).await;
    assert_down(
        &o,
        &format!(
            "too many redirects (more than 2) at {}",
            server.url("/redirect/0")
        ),
    );
    let o = check(http(server.url("/redirect/1"), |t| {
        t.expect_status = vec![301]
    }))
    .await;
    assert!(o.up, "an expected redirect is not followed: {o:?}");
}

#[tokio::test]
async fn body_conditions() {
    let server = TargetServer::start().await;
    let o = check(http(server.url("/hello"), |t| {
        t.body_contains = Some("Welcome".into())
    }))
    .await;
    assert_down(&o, "body lacks 'Welcome'");
    let o = check(http(server.url("/hello"), |t| {
        t.body_matches = Some("^H.llo$".into())
    }))
    .await;
    assert!(o.up, "{o:?}");
    let json = |value: serde_json::Value| {
        http(server.url("/json"), move |t| {
            t.json_pointer = Some("/version".into());
            t.json_equals = Some(value);
        })
    };
    assert!(check(json(serde_json::json!(3))).await.up);
    assert_down(
        &check(json(serde_json::json!(4))).await,
        "JSON /version is 3, expected 4",
    );
}

#[tokio::test]
async fn refused_connections_and_tcp() {
    let port = closed_port().await;
    let o = check(http(format!("http://127.0.0.1:{port}/"), |_| {})).await;
    assert_down(&o, "connect: connection refused");
    let mut t = TargetConfig::new("tcp");
    t.tcp = Some(format!("127.0.0.1:{port}"));
    assert_down(&check(t).await, "connect: connection refused");
    let server = TargetServer::start().await;
    let mut t = TargetConfig::new("tcp");
    t.tcp = Some(server.addr.to_string());
    let o = check(t).await;
    assert!(o.up, "{o:?}");
}

#[tokio::test]
async fn certificates() {
    let ca = TestCa::new();
    let pem = ca.pem();
    let checker = Checker::with_extra_roots(Some((pem.as_bytes(), "test CA"))).expect("checker");
    let (chain, key) = ca.leaf_expiring_in(90);
    let good = TargetServer::start_tls(chain, key).await;
    let (chain, key) = ca.leaf_expiring_in(3);
    let soon = TargetServer::start_tls(chain, key).await;
    let now = time::OffsetDateTime::now_utc();
    let (chain, key) = ca.leaf(
        &["127.0.0.1"],
        now - time::Duration::days(60),
        now - time::Duration::days(1),
    );
    let expired = TargetServer::start_tls(chain, key).await;
    let (chain, key) = ca.leaf(
        &["example.invalid"],
        now - time::Duration::days(1),
        now + time::Duration::days(60),
    );
    let wrong_name = TargetServer::start_tls(chain, key).await;
    let (chain, key) = self_signed();
    let untrusted = TargetServer::start_tls(chain, key).await;

    let https = |server: &TargetServer| http(server.url("/"), |t| t.cert_min_days = Some(14));
    let o = check_with(&checker, https(&good)).await;
    assert!(o.up, "{o:?}");
    assert_eq!(o.cert_expiry_days, Some(90));
    let o = check_with(&checker, https(&good)).await;
    assert_eq!(
        o.cert_expiry_days,
        Some(90),
        "each check handshakes afresh and sees the certificate"
    );
    let pooled = http(good.url("/"), |t| {
        t.cert_min_days = Some(14);
        t.reuse_connections = Some(true);
    });
    let o = check_with(&checker, pooled).await;
    assert!(o.up, "{o:?}");
    assert_eq!(
        o.cert_expiry_days,
        Some(90),
        "the pooled client trusts the same CA"
    );
    let o = check_with(&checker, https(&soon)).await;
    assert_down(&o, "certificate expires in 3 days");
    assert_down(
        &check_with(&checker, https(&expired)).await,
        "tls: certificate expired",
    );
    assert_down(
        &check_with(&checker, https(&wrong_name)).await,
        "tls: certificate not valid for this host name",
    );
    assert_down(
        &check_with(&checker, https(&untrusted)).await,
        "tls: certificate not trusted",
    );
    assert_down(&check(https(&good)).await, "tls: certificate not trusted"); // without the CA

    let tls = |server: &TargetServer| {
        let mut t = TargetConfig::new("tls");
        t.tls = Some(server.addr.to_string());
        t.cert_min_days = Some(14);
        t
    };
    let o = check_with(&checker, tls(&good)).await;
    assert!(o.up, "{o:?}");
    assert_eq!(
        (o.reason.as_str(), o.cert_expiry_days),
        ("certificate valid for 90 days", Some(90))
    );
    assert_down(
        &check_with(&checker, tls(&soon)).await,
        "certificate expires in 3 days",
    );
    assert_down(
        &check_with(&checker, tls(&expired)).await,
        "tls: certificate expired",
    );
    assert_down(
        &check_with(&checker, tls(&untrusted)).await,
        "tls: certificate not trusted",
    );
}

#[tokio::test]
async fn ca_file_from_config() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca.pem()).expect("write ca");
    let (chain, key) = ca.leaf_expiring_in(30);
    let server = TargetServer::start_tls(chain, key).await;
    let config = MonitorConfig {
        ca_file: Some(path),
        ..monitor()
    };
    let checker = Checker::new(&config).expect("checker from config");
    assert!(check_with(&checker, http(server.url("/"), |_| {})).await.up);
    let missing = MonitorConfig {
        ca_file: Some(dir.path().join("nope.pem")),
        ..monitor()
    };
    let error = Checker::new(&missing)
        .err()
        .expect("a missing CA file is an error");
    assert!(error.to_string().contains("nope.pem"), "{error}");
}

/// Collects scheduler messages for target 0 until `until` holds, within a deadline.
async fn collect_until(
    rx: &mut tokio::sync::mpsc::Receiver<Message>,
    seen: &mut Vec<Message>,
    until: impl Fn(&Message) -> bool,
) -> TrackerState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last_state = TrackerState::default();
    loop {
        let message = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("condition within 10s")
            .expect("open");
        if let Message::Checked(report) = &message
            && report.index == 0
        {
            last_state = report.state.clone();
        }
        let done = until(&message);
        seen.push(message);
        if done {
            return last_state;
        }
    }
}

fn scheduler_config(server: &TargetServer) -> MonitorConfig {
    let mut site = TargetConfig::new("site");
    site.url = Some(server.url("/"));
    // A target that hangs forever must not slow the site's checks down.
    let mut hang = TargetConfig::new("hang");
    hang.url = Some(server.url("/hang"));
    MonitorConfig {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(80),
        failure_threshold: 2,
        success_threshold: 1,
        storm: StormConfig {
            window: Duration::from_millis(50),
            ..StormConfig::default()
        },
        target: vec![site, hang],
        ..MonitorConfig::default()
    }
}

fn alerts(seen: &[Message]) -> Vec<&'static str> {
    seen.iter()
        .filter_map(|m| match m {
            Message::Alert(a @ Alert::Single { index: 0, .. }) => Some(a.name().name()),
            _ => None,
        })
        .collect()
}

fn states(seen: &[Message]) -> Vec<State> {
    let mut out: Vec<State> = Vec::new();
    for m in seen {
        if let Message::Checked(r) = m
            && r.index == 0
            && out.last() != Some(&r.state.state)
        {
            out.push(r.state.state);
        }
    }
    out
}

#[tokio::test]
async fn an_outage_alerts_once_down_and_once_up_even_across_a_restart() {
    let server = TargetServer::start().await;
    let config = scheduler_config(&server);
    assert_eq!(config.validate(), vec![]);
    let checker = Checker::new(&config).expect("checker");
    let is_alert = |name: &'static str| move |m: &Message| matches!(m, Message::Alert(a) if a.name().name() == name);

    // First run: up, then the site fails and goes down.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let scheduler = Scheduler::new(&config, checker.clone(), Vec::new(), tx).expect("scheduler");
    let lag = scheduler.lag();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(scheduler.run(shutdown.clone()));
    let mut seen = Vec::new();
    collect_until(
        &mut rx,
        &mut seen,
        |m| matches!(m, Message::Checked(r) if r.state.state == State::Up),
    )
    .await;
    server.set(Mode::Status(503));
    collect_until(&mut rx, &mut seen, is_alert("MonitorDown")).await;
    // A few more failed checks, then a "crash".
    let saved = collect_until(
        &mut rx,
        &mut seen,
        |m| matches!(m, Message::Checked(r) if r.state.failures >= 4),
    )
    .await;
    shutdown.cancel();
    running.await.expect("scheduler stops on shutdown");
    assert!(lag.snapshot().count >= 5, "lag recorded");
    assert!(
        lag.snapshot().quantile(0.99) < Duration::from_millis(50),
        "lag {:?}",
        lag.snapshot()
    );
    assert_eq!(
        states(&seen),
        [State::Up, State::Down],
        "a first good check is Up at once"
    );

    // Restart from the persisted state, still failing: no new down alert; then it recovers: one up alert.
    let saved: TrackerState =
        serde_json::from_str(&serde_json::to_string(&saved).expect("ser")).expect("de");
    assert_eq!(saved.state, State::Down);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let scheduler = Scheduler::new(&config, checker, vec![saved], tx).expect("scheduler");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(scheduler.run(shutdown.clone()));
    collect_until(
        &mut rx,
        &mut seen,
        |m| matches!(m, Message::Checked(r) if r.state.failures >= 6),
    )
    .await;
    server.set(Mode::Ok);
    collect_until(&mut rx, &mut seen, is_alert("MonitorUp")).await;
    let after_up = collect_until(
        &mut rx,
        &mut seen,
        |m| matches!(m, Message::Checked(r) if r.state.successes >= 3),
    )
    .await;
    shutdown.cancel();
    running.await.expect("scheduler stops");
    while let Ok(m) = rx.try_recv() {
        seen.push(m);
    }
    assert_eq!(after_up.state, State::Up);
    assert_eq!(
        alerts(&seen),
        ["MonitorDown", "MonitorUp"],
        "exactly one down and one up alert"
    );
    let up = seen.iter().find_map(|m| match m {
        Message::Alert(Alert::Single {
            event:
                Event::MonitorUp {
                    downtime,
                    last_failure,
                },
            ..
        }) => Some((*downtime, last_failure.clone())),
        _ => None,
    });
    let (downtime, last_failure) = up.expect("an up event");
    assert!(
        downtime >= Duration::from_millis(500),
        "downtime {downtime:?} spans both runs"
    );
    assert_eq!(last_failure, "HTTP 503");
}
