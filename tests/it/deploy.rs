//! Deploy rollouts against real OpenSSH servers on loopback: three sshd = three hosts, each with its
//! own port and host key. "A file on each host" is a file named after the host (`{host}` includes
//! the port), since every sshd runs on this machine.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tend::deploy::config::Hosts;
use tend::deploy::report::{FailedStage, RolloutSink};
use tend::deploy::{
    DeployConfig, DeployContext, HostResult, RolloutSummary, Verdict, build_plan, deploy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::support::sshd::{SshHosts, start_hosts};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl RolloutSink for Lines {
    fn output(&self, host: &str, line: &str) {
        self.0.lock().unwrap().push(format!("{host} | {line}"));
    }
}

/// A `[deploy]` config for `hosts` with `extra` TOML lines appended.
fn config(hosts: &SshHosts, steps: &[String], extra: &str) -> DeployConfig {
    let text = format!("{}steps = {steps:?}\n{extra}", hosts.deploy_login());
    let config: DeployConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(config.validate(), vec![]);
    config
}

async fn run(config: &DeployConfig) -> (RolloutSummary, Arc<Lines>) {
    let context = DeployContext {
        commit: Some(COMMIT.into()),
        branch: Some("main".into()),
    };
    let plan = build_plan(config, &[], &context, None).unwrap();
    let sink = Arc::new(Lines::default());
    let summary = deploy(config, &plan, None, sink.clone(), CancellationToken::new())
        .await
        .unwrap();
    (summary, sink)
}

fn write_step(out: &Path) -> String {
    format!(
        "mkdir -p {0} && echo {{commit}} > {0}/{{host}} && echo deployed {{host}}",
        out.display()
    )
}

fn deployed(out: &Path, host: &str) -> Option<String> {
    std::fs::read_to_string(out.join(host))
        .ok()
        .map(|s| s.trim().to_owned())
}

#[tokio::test]
async fn success_across_batches_writes_a_file_on_each_host() {
    let hosts = start_hosts(3);
    let out = tempfile::tempdir().unwrap();
    let c = config(
        &hosts,
        &[write_step(out.path()), "true".into()],
        "batch = 2\n",
    );
    let (summary, lines) = run(&c).await;
    assert_eq!(summary.verdict, Verdict::Succeeded, "{}", summary.table());
    for host in hosts.addresses() {
        assert_eq!(
            deployed(out.path(), &host).as_deref(),
            Some(COMMIT),
            "{host}"
        );
        assert!(
            lines
                .0
                .lock()
                .unwrap()
                .contains(&format!("{host} | deployed {host}")),
            "output of {host} streamed"
        );
    }
    assert!(
        summary
            .hosts
            .iter()
            .all(|h| h.result == HostResult::Succeeded)
    );
}

#[tokio::test]
async fn a_failing_step_on_host_2_keeps_host_3_from_starting() {
    let hosts = start_hosts(3);
    let out = tempfile::tempdir().unwrap();
    let addresses = hosts.addresses();
    // Host 2's step fails: it finds a marker file named after it.
    std::fs::write(out.path().join(format!("fail-{}", addresses[1])), "").unwrap();
    let steps = [
        write_step(out.path()),
        format!(
            "echo checking; test ! -e {}/fail-{{host}}",
            out.path().display()
        ),
    ];
    let (summary, _) = run(&config(&hosts, &steps, "batch = 1\n")).await;
    assert_eq!(summary.verdict, Verdict::Failed);
    assert_eq!(summary.exit_code(), 1);
    assert_eq!(deployed(out.path(), &addresses[0]).as_deref(), Some(COMMIT));
    assert_eq!(
        deployed(out.path(), &addresses[2]),
        None,
        "host 3 must not start"
    );
    let (host, failure) = summary.first_failure().unwrap();
    assert_eq!(host.host, addresses[1]);
    assert!(
        matches!(failure.stage, FailedStage::Step { index: 1, .. }),
        "{:?}",
        failure.stage
    );
    assert_eq!(failure.exit_code, Some(1));
    assert_eq!(failure.last_lines, ["checking"]);
    assert_eq!(summary.hosts[2].result, HostResult::Skipped);
}

/// A one-route HTTP server answering 503 to everything; counts requests.
async fn unhealthy_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (url, hits)
}

#[tokio::test]
async fn an_unhealthy_host_aborts_the_rollout() {
    let hosts = start_hosts(3);
    let out = tempfile::tempdir().unwrap();
    let (url, hits) = unhealthy_server().await;
    let extra = format!(
        "batch = 1\nhealth_url = {url:?}\nhealth_retries = 1\nhealth_interval = \"50ms\"\n"
    );
    let (summary, _) = run(&config(&hosts, &[write_step(out.path())], &extra)).await;
    assert_eq!(summary.verdict, Verdict::Failed);
    let (host, failure) = summary.first_failure().unwrap();
    assert_eq!(host.host, hosts.addresses()[0]);
    assert_eq!(failure.stage, FailedStage::Health { url: url.clone() });
    assert!(failure.reason.contains("503"), "{}", failure.reason);
    assert_eq!(hits.load(Ordering::SeqCst), 2, "one attempt and one retry");
    assert_eq!(deployed(out.path(), &hosts.addresses()[1]), None);
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_under_strict_checking() {
    let hosts = start_hosts(1);
    let out = tempfile::tempdir().unwrap();
    let empty = hosts.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let mut c = config(&hosts, &[write_step(out.path())], "");
    c.known_hosts = Some(empty.clone());
    let (summary, _) = run(&c).await;
    assert_eq!(summary.verdict, Verdict::Failed);
    let (_, failure) = summary.first_failure().unwrap();
    assert_eq!(failure.stage, FailedStage::Connect);
    assert!(
        failure.reason.contains("Host key verification failed"),
        "{}",
        failure.reason
    );
    assert_eq!(
        deployed(out.path(), &hosts.addresses()[0]),
        None,
        "nothing ran"
    );
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "",
        "strict mode learns nothing"
    );

    // accept-new learns the key on first contact and deploys.
    c.host_key_checking = tend::deploy::config::HostKeyChecking::AcceptNew;
    let (summary, _) = run(&c).await;
    assert_eq!(summary.verdict, Verdict::Succeeded, "{}", summary.table());
    assert!(
        std::fs::read_to_string(&empty)
            .unwrap()
            .contains(&hosts.hosts[0].host_key)
    );
}

#[tokio::test]
async fn a_changed_host_key_is_refused_even_with_accept_new() {
    let hosts = start_hosts(2);
    let out = tempfile::tempdir().unwrap();
    // known_hosts claims host 0's address has host 1's key.
    let wrong = hosts.dir.path().join("wrong_known_hosts");
    std::fs::write(
        &wrong,
        format!(
            "[127.0.0.1]:{} {}\n",
            hosts.hosts[0].port, hosts.hosts[1].host_key
        ),
    )
    .unwrap();
    let mut c = config(
        &hosts,
        &[write_step(out.path())],
        "host_key_checking = \"accept-new\"\n",
    );
    c.known_hosts = Some(wrong);
    c.hosts = Hosts::List(vec![
        tend::deploy::Target::parse(&hosts.addresses()[0]).unwrap(),
    ]);
    let (summary, _) = run(&c).await;
    let (_, failure) = summary.first_failure().expect("refused");
    assert_eq!(failure.stage, FailedStage::Connect);
    assert_eq!(deployed(out.path(), &hosts.addresses()[0]), None);
}

#[tokio::test]
async fn a_hanging_step_times_out() {
    let hosts = start_hosts(1);
    let c = config(
        &hosts,
        &["echo started; sleep 20.5".into()],
        "step_timeout = \"3s\"\n",
    );
    let started = std::time::Instant::now();
    let (summary, lines) = run(&c).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let (_, failure) = summary.first_failure().unwrap();
    assert_eq!(failure.reason, "timed out after 3s");
    assert_eq!(failure.exit_code, None);
    assert_eq!(failure.last_lines, ["started"]);
    assert!(
        lines
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.ends_with("| started"))
    );
    // The step is stopped on the host too (remote `timeout`), not left running after tend gave up on it.
    crate::support::wait_for(
        "the remote step to be stopped",
        std::time::Duration::from_secs(15),
        || {
            let out = std::process::Command::new("pgrep")
                .args(["-f", "sleep 20.5"])
                .output()
                .ok()?;
            out.stdout.is_empty().then_some(())
        },
    );
}

#[tokio::test]
async fn steps_in_one_session_each_keep_their_own_timeout() {
    // Three steps go as one script over one session: the first two take longer together than the step timeout
    // and pass; the third hangs and is timed out on its own, and stopped on the host.
    let hosts = start_hosts(1);
    let c = config(
        &hosts,
        &[
            "sleep 1.6; echo one".into(),
            "sleep 1.6; echo two".into(),
            "echo started; sleep 20.7".into(),
        ],
        "step_timeout = \"3s\"\n",
    );
    let started = std::time::Instant::now();
    let (summary, lines) = run(&c).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let (_, failure) = summary.first_failure().unwrap();
    assert!(
        matches!(failure.stage, FailedStage::Step { index: 2, .. }),
        "{:?}",
        failure.stage
    );
    assert_eq!(failure.reason, "timed out after 3s");
    assert_eq!(failure.last_lines, ["started"]);
    let seen = lines.0.lock().unwrap().clone();
    for word in ["one", "two", "started"] {
        assert!(
            seen.iter().any(|l| l.ends_with(&format!("| {word}"))),
            "{seen:?}"
        );
    }
    assert!(
        !seen.iter().any(|l| l.contains("@@tend-")),
        "markers are not output: {seen:?}"
    );
    crate::support::wait_for(
        "the remote step to be stopped",
        std::time::Duration::from_secs(15),
        || {
            let out = std::process::Command::new("pgrep")
                .args(["-f", "sleep 20.7"])
                .output()
                .ok()?;
            out.stdout.is_empty().then_some(())
        },
    );
}
