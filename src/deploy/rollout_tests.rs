//! Rollout executor tests with fake SSH and health probes (scripted success, failure, hang).

use super::*;
use crate::deploy::config::Batch;
use crate::deploy::health::Unhealthy;
use crate::deploy::plan::{DeployContext, build_plan};
use crate::deploy::ssh::{RemoteSession, SshError};
use crate::deploy::target::Target;
use std::sync::Mutex;
use std::time::Duration;

/// Fake SSH: a command containing `fail` exits 3 after printing `boom`; `hang` never ends; a host
/// whose name starts with `down` refuses connections. Every connect and command is logged.
#[derive(Default)]
struct FakeSsh {
    log: Mutex<Vec<String>>,
}

struct FakeSession {
    host: String,
    ssh: Arc<FakeSsh>,
}

impl FakeSsh {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Connector for Arc<FakeSsh> {
    type Session = FakeSession;
    async fn connect(&self, target: &Target) -> Result<FakeSession, SshError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} connect", target.name));
        if target.name.starts_with("down") {
            return Err(SshError::Connect {
                host: target.name.clone(),
                source: "Connection refused".into(),
            });
        }
        Ok(FakeSession {
            host: target.name.clone(),
            ssh: self.clone(),
        })
    }
}

impl RemoteSession for FakeSession {
    async fn run(
        &self,
        command: &str,
        line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Option<i32>, SshError> {
        self.ssh
            .log
            .lock()
            .unwrap()
            .push(format!("{} $ {command}", self.host));
        if command.contains("hang") {
            std::future::pending::<()>().await;
        }
        if command.contains("slow") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if command.contains("fail") {
            for i in 0..30 {
                line(&format!("line {i}"));
            }
            line("boom");
            return Ok(Some(3));
        }
        line(&format!("ran {command}"));
        Ok(Some(0))
    }
    async fn close(self) {
        self.ssh
            .log
            .lock()
            .unwrap()
            .push(format!("{} close", self.host));
    }
}

/// Fake health: URLs containing `sick` are unhealthy; `flaky` is healthy from the 3rd request on.
#[derive(Default)]
struct FakeHealth {
    calls: Mutex<Vec<String>>,
}

impl HealthCheck for Arc<FakeHealth> {
    async fn check(&self, url: &str) -> Result<(), Unhealthy> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(url.to_owned());
            calls.iter().filter(|u| *u == url).count()
        };
        if url.contains("sick") || (url.contains("flaky") && n < 3) {
            return Err(Unhealthy {
                url: url.to_owned(),
                why: "HTTP 503 Service Unavailable".into(),
            });
        }
        Ok(())
    }
}

/// Collects output lines in memory.
#[derive(Default)]
struct MemorySink {
    lines: Mutex<Vec<String>>,
}

impl RolloutSink for MemorySink {
    fn output(&self, host: &str, line: &str) {
        self.lines.lock().unwrap().push(format!("{host} | {line}"));
    }
}

fn plan(
    hosts: &[&str],
    steps: &[&str],
    batch: usize,
    health: Option<&str>,
    rollback: &[&str],
) -> Plan {
    let text = format!("hosts = {hosts:?}\nsteps = {steps:?}\nrollback_steps = {rollback:?}\n");
    let mut config: DeployConfig = toml::from_str(&text).unwrap();
    config.batch = Batch::Count(batch);
    config.health_url = health.map(str::to_owned);
    assert_eq!(config.validate(), vec![]);
    build_plan(
        &config,
        &[],
        &DeployContext {
            commit: Some("c0ffee".into()),
            branch: None,
        },
        None,
    )
    .unwrap()
}

fn options() -> RolloutOptions {
    RolloutOptions {
        step_timeout: Duration::from_secs(5),
        health_timeout: Duration::from_secs(1),
        health_retries: 2,
        health_interval: Duration::from_millis(10),
    }
}

async fn run(
    plan: &Plan,
) -> (
    RolloutSummary,
    Arc<FakeSsh>,
    Arc<FakeHealth>,
    Arc<MemorySink>,
) {
    let (ssh, health, sink) = (
        Arc::new(FakeSsh::default()),
        Arc::new(FakeHealth::default()),
        Arc::new(MemorySink::default()),
    );
    let edges = Edges {
        connector: Arc::new(ssh.clone()),
        health: Arc::new(health.clone()),
        balancer: None,
        gate: None,
    };
    let summary = run_rollout(
        plan,
        &options(),
        edges,
        sink.clone(),
        CancellationToken::new(),
    )
    .await;
    (summary, ssh, health, sink)
}

fn position(log: &[String], entry: &str) -> usize {
    log.iter()
        .position(|l| l == entry)
        .unwrap_or_else(|| panic!("{entry:?} not in {log:#?}"))
}

#[tokio::test]
async fn success_across_batches_in_order() {
    let p = plan(
        &["h1", "h2", "h3"],
        &["echo {commit}", "true"],
        2,
        Some("http://{address}/ok"),
        &[],
    );
    let (summary, ssh, health, sink) = run(&p).await;
    assert_eq!(summary.verdict, Verdict::Succeeded);
    assert_eq!(summary.exit_code(), 0);
    assert!(
        summary
            .hosts
            .iter()
            .all(|h| h.result == HostResult::Succeeded && h.failure.is_none())
    );
    let log = ssh.log();
    assert!(position(&log, "h3 $ echo c0ffee") > position(&log, "h1 $ true"));
    assert!(position(&log, "h3 $ echo c0ffee") > position(&log, "h2 $ true"));
    assert!(position(&log, "h1 $ true") > position(&log, "h1 $ echo c0ffee"));
    for h in ["h1", "h2", "h3"] {
        let connects = log.iter().filter(|l| **l == format!("{h} connect")).count();
        assert_eq!(connects, 1, "{h} connected once: {log:#?}");
        assert!(position(&log, &format!("{h} close")) > position(&log, "h3 $ true"));
    }
    assert_eq!(health.calls.lock().unwrap().len(), 3);
    assert!(
        sink.lines
            .lock()
            .unwrap()
            .contains(&"h2 | ran echo c0ffee".to_owned())
    );
}

#[tokio::test]
async fn a_failing_step_stops_later_hosts_and_reports_the_step() {
    let p = plan(
        &["h1", "h2-fail", "h3"],
        &["echo {host}", "do {name}"],
        1,
        None,
        &[],
    );
    let (summary, ssh, _, _) = run(&p).await;
    assert_eq!(summary.verdict, Verdict::Failed);
    assert_eq!(summary.exit_code(), 1);
    let log = ssh.log();
    assert!(
        !log.iter().any(|l| l.starts_with("h3 $")),
        "h3 must not start: {log:#?}"
    );
    assert!(
        !log.contains(&"h2-fail $ do h2-fail".to_owned()),
        "no step after the failing one"
    );
    assert!(
        log.contains(&"h2-fail close".to_owned()),
        "the session is closed"
    );
    let (host, failure) = summary.first_failure().unwrap();
    assert_eq!(host.host, "h2-fail");
    assert_eq!(
        failure.stage,
        FailedStage::Step {
            index: 0,
            command: "echo h2-fail".into()
        }
    );
    assert_eq!(failure.exit_code, Some(3));
    assert_eq!(failure.last_lines.len(), LAST_LINES);
    assert_eq!(failure.last_lines.last().map(String::as_str), Some("boom"));
    assert_eq!(summary.hosts[2].result, HostResult::Skipped);
    let table = summary.table();
    assert!(table.contains("h2-fail  FAILED"), "{table}");
    assert!(
        table.contains("step 1 `echo h2-fail`: exit code 3"),
        "{table}"
    );
    assert!(table.contains("h3       skipped"), "{table}");
}

#[tokio::test]
async fn the_running_batch_finishes_and_is_rolled_back() {
    let p = plan(
        &["h1", "h2-fail", "h3", "h4"],
        &["step {host}"],
        3,
        None,
        &["undo {host}"],
    );
    let (summary, ssh, _, _) = run(&p).await;
    assert_eq!(summary.verdict, Verdict::Failed);
    let log = ssh.log();
    for h in ["h1", "h3"] {
        assert!(
            log.contains(&format!("{h} $ step {h}")),
            "{h} in the running batch finishes"
        );
        assert!(log.contains(&format!("{h} $ undo {h}")), "{h} rolled back");
    }
    assert!(log.contains(&"h2-fail $ undo h2-fail".to_owned()));
    assert!(!log.iter().any(|l| l.starts_with("h4 $")), "{log:#?}");
    assert_eq!(summary.hosts[0].rollback, Some(Ok(())));
    assert!(summary.table().contains("rolled back"));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_step_times_out_and_fails_the_host() {
    let p = plan(&["h1"], &["hang here"], 1, None, &[]);
    let (summary, ..) = run(&p).await;
    let (_, failure) = summary.first_failure().unwrap();
    assert_eq!(failure.reason, "timed out after 5s");
    assert_eq!(failure.exit_code, None);
    assert_eq!(summary.verdict, Verdict::Failed);
}

#[tokio::test]
async fn an_unhealthy_host_fails_after_the_retries() {
    let p = plan(
        &["h1", "h2"],
        &["true"],
        1,
        Some("http://{address}/sick"),
        &[],
    );
    let (summary, ssh, health, _) = run(&p).await;
    assert_eq!(summary.verdict, Verdict::Failed);
    assert_eq!(
        health.calls.lock().unwrap().len(),
        3,
        "1 attempt + 2 retries"
    );
    let (_, failure) = summary.first_failure().unwrap();
    assert_eq!(
        failure.stage,
        FailedStage::Health {
            url: "http://h1/sick".into()
        }
    );
    assert!(
        failure.reason.contains("503") && failure.reason.contains("3 attempt(s)"),
        "{}",
        failure.reason
    );
    assert!(!ssh.log().iter().any(|l| l.starts_with("h2 $")));
}

#[tokio::test]
async fn a_flaky_health_check_passes_within_the_retries() {
    let p = plan(&["h1"], &["true"], 1, Some("http://{address}/flaky"), &[]);
    let (summary, _, health, _) = run(&p).await;
    assert_eq!(summary.verdict, Verdict::Succeeded);
    assert_eq!(health.calls.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_connection_failure_fails_the_host() {
    let p = plan(&["down1"], &["true"], 1, None, &[]);
    let (summary, ..) = run(&p).await;
    let (_, failure) = summary.first_failure().unwrap();
    assert_eq!(failure.stage, FailedStage::Connect);
    assert!(
        failure.reason.contains("down1") && failure.reason.contains("Connection refused"),
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn shutdown_before_start_runs_nothing() {
    let p = plan(&["h1", "h2"], &["true"], 1, None, &[]);
    let ssh = Arc::new(FakeSsh::default());
    let token = CancellationToken::new();
    token.cancel();
    let edges = Edges {
        connector: Arc::new(ssh.clone()),
        health: Arc::new(Arc::new(FakeHealth::default())),
        balancer: None,
        gate: None,
    };
    let summary = run_rollout(
        &p,
        &options(),
        edges,
        Arc::new(MemorySink::default()),
        token,
    )
    .await;
    assert_eq!(summary.verdict, Verdict::Cancelled);
    assert!(ssh.log().is_empty());
}

#[tokio::test]
async fn every_connection_opens_at_the_start_while_the_first_batch_runs() {
    let p = plan(&["h1", "h2", "h3", "h4"], &["slow", "true"], 2, None, &[]);
    let (summary, ssh, ..) = run(&p).await;
    assert_eq!(summary.verdict, Verdict::Succeeded);
    let log = ssh.log();
    for h in ["h3", "h4"] {
        assert!(
            position(&log, &format!("{h} connect")) < position(&log, "h1 $ true"),
            "{h} is connected while batch 1 runs: {log:#?}"
        );
    }
}

/// A balancer that writes into the fake SSH log, so its calls can be ordered against the steps; `fail-drain`
/// hosts cannot be deregistered.
struct LoggingBalancer(Arc<FakeSsh>);

impl crate::balancer::Balancer for LoggingBalancer {
    fn register<'a>(
        &'a self,
        instance: &'a crate::cloud::Instance,
    ) -> crate::cloud::CloudFuture<'a, ()> {
        Box::pin(async move {
            let entry = format!("{} register", instance.name);
            self.0.log.lock().unwrap().push(entry);
            Ok(())
        })
    }
    fn deregister<'a>(
        &'a self,
        instance: &'a crate::cloud::Instance,
    ) -> crate::cloud::CloudFuture<'a, ()> {
        Box::pin(async move {
            if instance.name.contains("fail-drain") {
                return Err(crate::cloud::CloudError::permanent(
                    "command:deregister",
                    "exit status 1",
                ));
            }
            let entry = format!("{} deregister", instance.name);
            self.0.log.lock().unwrap().push(entry);
            Ok(())
        })
    }
}

/// Health that also writes into the fake SSH log.
struct LoggingHealth(Arc<FakeSsh>, Arc<FakeHealth>);

impl HealthCheck for LoggingHealth {
    async fn check(&self, url: &str) -> Result<(), Unhealthy> {
        self.0.log.lock().unwrap().push(format!("health {url}"));
        self.1.check(url).await
    }
}

async fn run_drained(plan: &Plan) -> (RolloutSummary, Vec<String>) {
    let ssh = Arc::new(FakeSsh::default());
    let edges = Edges {
        connector: Arc::new(ssh.clone()),
        health: Arc::new(LoggingHealth(ssh.clone(), Arc::default())),
        balancer: Some(Arc::new(LoggingBalancer(ssh.clone())) as Arc<dyn crate::balancer::Balancer>),
        gate: None,
    };
    let sink = Arc::new(MemorySink::default());
    let summary = run_rollout(plan, &options(), edges, sink, CancellationToken::new()).await;
    (summary, ssh.log())
}

#[tokio::test]
async fn a_host_leaves_the_balancer_before_its_steps_and_returns_after_its_health_check() {
    let p = plan(
        &["h1", "h2"],
        &["one", "two"],
        1,
        Some("http://{address}/ok"),
        &[],
    );
    let (summary, log) = run_drained(&p).await;
    assert_eq!(summary.verdict, Verdict::Succeeded, "{}", summary.table());
    for h in ["h1", "h2"] {
        let order = [
            format!("{h} deregister"),
            format!("{h} $ one"),
            format!("{h} $ two"),
            format!("health http://{h}/ok"),
            format!("{h} register"),
        ];
        let at: Vec<usize> = order.iter().map(|e| position(&log, e)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{h}: {log:#?}");
    }
    assert!(position(&log, "h2 deregister") > position(&log, "h1 register"));
    assert!(summary.left_out().is_empty());
}

#[tokio::test]
async fn an_unhealthy_host_stays_out_of_the_balancer() {
    let p = plan(
        &["h1-sick", "h2"],
        &["one"],
        1,
        Some("http://{address}/x"),
        &[],
    );
    let (summary, log) = run_drained(&p).await;
    assert_eq!(summary.verdict, Verdict::Failed);
    assert!(log.contains(&"h1-sick deregister".to_owned()));
    assert!(!log.contains(&"h1-sick register".to_owned()), "{log:#?}");
    assert_eq!(summary.left_out(), ["h1-sick"]);
    assert!(summary.table().contains("left out of the balancer"));
    assert!(
        !log.iter()
            .any(|l| l.starts_with("h2 $") || l == "h2 deregister"),
        "h2 never starts: {log:#?}"
    );
}

#[tokio::test]
async fn an_unreachable_host_is_never_taken_out_and_a_failed_drain_fails_the_host() {
    let p = plan(&["down1"], &["one"], 1, None, &[]);
    let (summary, log) = run_drained(&p).await;
    assert_eq!(
        summary.hosts[0].failure.as_ref().unwrap().stage,
        FailedStage::Connect
    );
    assert!(!log.iter().any(|l| l.contains("deregister")), "{log:#?}");
    assert!(summary.left_out().is_empty(), "still in service");
    let p = plan(&["h1-fail-drain"], &["one"], 1, None, &[]);
    let (summary, log) = run_drained(&p).await;
    let failure = summary.hosts[0].failure.as_ref().unwrap();
    assert_eq!(failure.stage, FailedStage::Deregister);
    assert!(
        failure.reason.contains("exit status 1"),
        "{}",
        failure.reason
    );
    assert!(
        !log.iter().any(|l| l.contains(" $ ")),
        "no step ran: {log:#?}"
    );
}

/// A gate that closes once the fake SSH log holds `entry` (leadership lost while that command ran).
struct ClosesAfter(Arc<FakeSsh>, &'static str);

impl crate::deploy::gate::Gate for ClosesAfter {
    fn may_act(&self) -> Result<(), String> {
        match self.0.log().iter().any(|l| l == self.1) {
            true => Err("this replica no longer leads the cluster: leadership term ended".into()),
            false => Ok(()),
        }
    }
}

async fn run_gated(
    plan: &Plan,
    gate: impl Fn(&Arc<FakeSsh>) -> Arc<dyn crate::deploy::gate::Gate>,
) -> (RolloutSummary, Vec<String>) {
    let ssh = Arc::new(FakeSsh::default());
    let edges = Edges {
        connector: Arc::new(ssh.clone()),
        health: Arc::new(Arc::new(FakeHealth::default())),
        balancer: None,
        gate: Some(gate(&ssh)),
    };
    let sink = Arc::new(MemorySink::default());
    let summary = run_rollout(plan, &options(), edges, sink, CancellationToken::new()).await;
    (summary, ssh.log())
}

#[tokio::test]
async fn a_closed_gate_stops_the_host_before_its_next_step_and_starts_no_other() {
    let p = plan(&["h1", "h2", "h3"], &["one", "two"], 1, None, &["undo"]);
    let (summary, log) = run_gated(&p, |ssh| Arc::new(ClosesAfter(ssh.clone(), "h2 $ one"))).await;
    let commands: Vec<&String> = log.iter().filter(|l| l.contains(" $ ")).collect();
    assert_eq!(
        commands,
        ["h1 $ one", "h1 $ two", "h2 $ one"],
        "no step, and no rollback step, after the gate closed"
    );
    assert_ne!(summary.verdict, Verdict::Succeeded);
    let (host, failure) = summary.first_failure().expect("h2 stopped");
    assert_eq!(host.host, "h2");
    assert_eq!(
        failure.stage,
        FailedStage::Interrupted {
            before: "step 2".into()
        }
    );
    assert!(
        failure.reason.contains("no longer leads"),
        "{}",
        failure.reason
    );
    assert_eq!(summary.hosts[2].result, HostResult::Skipped);
}

#[tokio::test]
async fn a_gate_closed_from_the_start_runs_nothing() {
    let p = plan(&["h1", "h2"], &["one"], 1, None, &[]);
    let (summary, log) = run_gated(&p, |_| {
        Arc::new(crate::deploy::gate::testing::ClosingGate::after(0))
    })
    .await;
    assert!(!log.iter().any(|l| l.contains(" $ ")), "{log:#?}");
    assert_eq!(summary.verdict, Verdict::Cancelled);
}
