//! Deploys with `[cluster]`: three `tend run` replicas on a real 3-member etcd cluster deploying to real sshd
//! hosts. A webhook delivered to every replica starts one deploy, on the leader; a leader paused past its lease in
//! the middle of a rollout runs no further host step when it resumes, and every replica's `tend releases` shows
//! the release as interrupted. And the etcd release log itself, in this process: ids given once, the lock
//! refused to a second deploy and to a deposed term.

use std::path::Path;
use std::time::{Duration, SystemTime};

use tend::cluster::{Cluster, ClusterConfig, MemberInfo};
use tend::deploy::ReleaseLog;
use tend::deploy::etcd_releases::EtcdReleases;
use tend::deploy::releases::{NewRelease, ReleaseEnd, ReleaseError};
use tend::deploy::webhook::sign;
use tend::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::deploy_e2e::{decode_mail, post_hook, push_body};
use crate::support::etcd::EtcdCluster;
use crate::support::replicas::{Replica, agreed_leader, replica_config};
use crate::support::smtp::SmtpSink;
use crate::support::sshd::{SshHosts, start_hosts};
use crate::support::{http_get, run_tend, wait_for};

const LEASE: Duration = Duration::from_secs(3);
const SECRET: &str = "cluster-webhook-secret-8e2d4c1a9f";
const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// etcd, the hosts, an SMTP sink and the replicas' config (steps append to `out/steps.log`).
struct Rig {
    _etcd: EtcdCluster,
    hosts: SshHosts,
    smtp: SmtpSink,
    dir: tempfile::TempDir,
    out: tempfile::TempDir,
    config: String,
}

impl Rig {
    /// `n` hosts; `steps(log)` are the deploy steps given the step log's path.
    fn new(n: usize, steps: impl FnOnce(&Path) -> Vec<String>) -> Rig {
        let etcd = EtcdCluster::start(3);
        let hosts = start_hosts(n);
        let smtp = SmtpSink::start();
        let out = tempfile::tempdir().expect("temp dir");
        let steps = steps(&out.path().join("steps.log"));
        let config = format!(
            r#"{head}[deploy]
{login}steps = {steps:?}
batch = 1
step_timeout = "30s"
[deploy.webhook]
secret = "{SECRET}"
branch = "main"
"#,
            head = replica_config(&etcd, smtp.port, LEASE, "/it-deploy", ""),
            login = hosts.deploy_login(),
        );
        Rig {
            _etcd: etcd,
            hosts,
            smtp,
            dir: tempfile::tempdir().expect("temp dir"),
            out,
            config,
        }
    }

    fn replicas(&self) -> Vec<Replica> {
        ["tend-a", "tend-b", "tend-c"]
            .iter()
            .map(|n| Replica::start(self.dir.path(), n, &self.config))
            .collect()
    }

    /// The step log's lines: `MARK HOST SECONDS.NANOS`.
    fn steps(&self) -> Vec<(String, String, f64)> {
        std::fs::read_to_string(self.out.path().join("steps.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let mark = parts.next()?.to_string();
                let host = parts.next()?.to_string();
                let at = parts.next()?.parse().ok()?;
                Some((mark, host, at))
            })
            .collect()
    }
}

/// A step that appends `MARK {host} TIME` to `log`, then sleeps `sleep` seconds.
fn marker(log: &Path, mark: &str, sleep: &str) -> String {
    format!(
        "echo {mark} {{host}} $(date +%s.%N) >> {}; sleep {sleep}",
        log.display()
    )
}

/// The signed headers of a push delivery.
fn signed(body: &[u8], delivery: &str) -> Vec<(String, String)> {
    vec![
        ("X-Hub-Signature-256".into(), sign(SECRET, body)),
        ("X-GitHub-Delivery".into(), delivery.into()),
        ("X-GitHub-Event".into(), "push".into()),
    ]
}

fn post(port: u16, headers: &[(String, String)], body: &[u8]) -> (u16, String) {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post_hook(port, &h, body)
}

/// `GET /api/releases` of a replica, parsed.
fn releases(r: &Replica) -> Option<Vec<serde_json::Value>> {
    let raw = http_get(r.port, "/api/releases")?;
    let v: serde_json::Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1)?).ok()?;
    v["releases"].as_array().cloned()
}

/// `tend releases --json` in a replica's folder (it reads etcd, joining nothing).
fn cli_releases(r: &Replica) -> Vec<serde_json::Value> {
    let o = run_tend(&r.dir, &["releases", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("releases JSON");
    v["releases"].as_array().cloned().unwrap_or_default()
}

fn by_name<'a>(replicas: &'a [Replica], name: &str) -> &'a Replica {
    replicas.iter().find(|r| r.name == name).expect("replica")
}

#[test]
fn one_delivery_posted_to_every_replica_deploys_once_on_the_leader() {
    let rig = Rig::new(3, |log| {
        vec![marker(log, "one", "0"), marker(log, "two", "0")]
    });
    let replicas = rig.replicas();
    let all: Vec<&Replica> = replicas.iter().collect();
    let leader = agreed_leader(&all, 3, Duration::from_secs(30));

    let body = push_body("main", COMMIT);
    let headers = signed(&body, "5b0e1c2a-0000-4000-8000-000000000001");
    // The same delivery to all three at once (as a CI retrying against a load balancer might).
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let posts: Vec<_> = replicas
            .iter()
            .map(|r| s.spawn(|| post(r.port, &headers, &body)))
            .collect();
        posts.into_iter().map(|p| p.join().expect("post")).collect()
    });
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 202], "{answers:#?}");
    let queued = answers.iter().find(|a| a.0 == 202).expect("202");
    let queued: serde_json::Value = serde_json::from_str(&queued.1).expect("JSON");
    let follow = queued["url"]
        .as_str()
        .expect("where to follow it")
        .to_string();
    for (status, text) in &answers {
        if *status == 200 {
            assert!(text.contains("duplicate"), "{text}");
        }
    }

    let follower = replicas
        .iter()
        .find(|r| r.name != leader)
        .expect("a follower");
    let done = wait_for("the deploy to finish", Duration::from_secs(60), || {
        let list = releases(follower)?;
        (list.len() == 1 && list[0]["state"] != "running").then(|| list[0].clone())
    });
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["commit"], COMMIT);
    assert_eq!(done["trigger"], "webhook");

    // Each step ran once per host.
    let steps = rig.steps();
    for host in rig.hosts.addresses() {
        for mark in ["one", "two"] {
            let n = steps.iter().filter(|s| s.0 == mark && s.1 == host).count();
            assert_eq!(n, 1, "step {mark} on {host}: {steps:#?}");
        }
    }
    assert_eq!(steps.len(), 6, "{steps:#?}");
    // On the leader, and only there.
    let ran = "running on the leader";
    for r in &replicas {
        assert_eq!(
            r.log().contains(ran),
            r.name == leader,
            "{}:\n{}",
            r.name,
            r.log()
        );
    }
    // The follow URL ends at the release, on any replica.
    let raw = http_get(follower.port, &follow).expect("follow URL answers");
    assert!(raw.contains("\"succeeded\""), "{raw}");
    assert!(raw.contains("/api/deploys/1"), "{raw}");
    // Every replica reads the same history.
    for r in &replicas {
        let list = cli_releases(r);
        assert_eq!(list.len(), 1, "{}: {list:#?}", r.name);
        assert_eq!(list[0]["state"], "succeeded");
    }
}

#[test]
fn a_leader_paused_past_its_lease_mid_rollout_runs_no_further_host_step() {
    let rig = Rig::new(4, |log| {
        vec![marker(log, "one", "1"), marker(log, "two", "1")]
    });
    let replicas = rig.replicas();
    let all: Vec<&Replica> = replicas.iter().collect();
    let leader = agreed_leader(&all, 3, Duration::from_secs(30));
    let paused = by_name(&replicas, &leader);
    let follower = replicas
        .iter()
        .find(|r| r.name != leader)
        .expect("a follower");

    let body = push_body("main", COMMIT);
    let headers = signed(&body, "5b0e1c2a-0000-4000-8000-000000000002");
    let (status, answer) = post(follower.port, &headers, &body);
    assert_eq!(status, 202, "{answer}");

    // Pause the leader once the second host has begun.
    let second = rig.hosts.addresses()[1].clone();
    wait_for(
        "the rollout to reach host 2",
        Duration::from_secs(60),
        || rig.steps().iter().any(|s| s.1 == second).then_some(()),
    );
    paused.pause();
    let rest: Vec<&Replica> = replicas.iter().filter(|r| r.name != leader).collect();
    wait_for("another leader", LEASE * 4, || {
        rest.iter()
            .all(|r| r.leader().is_some_and(|l| l != leader))
            .then_some(())
    });
    // A new leader means the paused one's lease expired in etcd: it is past its own deadline too.
    let resumed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    paused.resume();

    // The resumed replica records how its deploy ended: interrupted (its rollout loop is over by then).
    let release = wait_for(
        "the release to be recorded as interrupted",
        Duration::from_secs(60),
        || {
            let list = releases(follower)?;
            let r = list.first()?.clone();
            (!r["finished_at"].is_null()).then_some(r)
        },
    );
    assert_eq!(release["state"], "interrupted", "{release}");
    assert!(
        release.to_string().contains("no longer leads"),
        "the host that was stopped says why: {release:#}"
    );
    let late: Vec<_> = rig.steps().into_iter().filter(|s| s.2 > resumed).collect();
    assert!(
        late.is_empty(),
        "host steps began after the leader resumed: {late:#?}"
    );
    let last = rig.hosts.addresses()[3].clone();
    assert!(
        !rig.steps().iter().any(|s| s.1 == last),
        "the last host never started: {:#?}",
        rig.steps()
    );
    for r in &rest {
        let list = cli_releases(r);
        assert_ne!(list[0]["state"], "succeeded", "{}: {list:#?}", r.name);
        assert_eq!(list[0]["state"], "interrupted");
    }
    let mails = wait_for(
        "the DeployInterrupted mail",
        Duration::from_secs(30),
        || {
            let m: Vec<(String, String)> =
                rig.smtp.messages().iter().map(|m| decode_mail(m)).collect();
            m.into_iter().find(|(s, _)| s.contains("interrupted"))
        },
    );
    assert!(mails.0.contains("Deploy #1 interrupted"), "{mails:?}");
    assert!(mails.1.contains("does not resume"), "{}", mails.1);
    // The new leader did not resume it, and said so; the lock does not block the next deploy.
    let new = rest[0].leader().expect("leader");
    let log = by_name(&replicas, &new).log();
    assert!(log.contains("Not resuming a deploy"), "{log}");
    let headers = signed(&body, "5b0e1c2a-0000-4000-8000-000000000003");
    let (status, answer) = post(rest[0].port, &headers, &body);
    assert_eq!(status, 202, "{answer}");
    let next = wait_for("the next deploy to finish", Duration::from_secs(60), || {
        let list = releases(follower)?;
        let r = list.first()?.clone();
        (r["id"] == 2 && r["state"] != "running").then_some(r)
    });
    assert_eq!(next["state"], "succeeded", "{next}");
}

/// A release about to start, as the deployer would record it.
fn new_release(commit: &str) -> NewRelease {
    NewRelease {
        started_at: 1_700_000_000_000,
        trigger: "webhook".into(),
        started_by: format!("delivery {commit}"),
        commit: Some(commit.into()),
        branch: Some("main".into()),
        hosts: vec!["h1".into()],
        rollback_of: None,
        holder: "root@it pid 1".into(),
    }
}

fn ended(ok: bool) -> ReleaseEnd {
    ReleaseEnd {
        at: 1_700_000_060_000,
        ok,
        summary: String::new(),
        log: String::new(),
        results: vec![],
        replaces: None,
        interrupted: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_release_log_gives_each_id_once_and_only_the_current_term_holds_the_lock() {
    let etcd = EtcdCluster::start(3);
    let mut config = ClusterConfig::new(etcd.endpoints());
    config.name = Some("solo".into());
    config.lease = LEASE;
    config.prefix = "/itr".into();
    let me = MemberInfo::for_config(&config, "http://solo:8080").expect("member");
    let token = CancellationToken::new();
    let cluster = Cluster::join(&config, me, &Metrics::new(), token.clone())
        .await
        .expect("join");
    let fence = tokio::time::timeout(LEASE * 3, async {
        let mut l = cluster.leadership();
        l.wait_for(Option::is_some)
            .await
            .expect("leadership")
            .clone()
    })
    .await
    .expect("solo leads")
    .expect("fence");
    let log = EtcdReleases::new(cluster.clone());
    assert!(
        matches!(
            log.begin(new_release("a")).await,
            Err(ReleaseError::NotLeader)
        ),
        "no lock outside a leadership term"
    );
    let term = log.in_term(fence.clone());

    // Ids one after another; the lock refuses a second deploy and names the first.
    assert_eq!(term.begin(new_release("a")).await.unwrap(), Ok(1));
    let held = term.begin(new_release("b")).await.unwrap().unwrap_err();
    assert_eq!(held.id, 1);
    assert!(held.holder.starts_with("solo ("), "{}", held.holder);
    term.finish(1, ended(true)).await.unwrap();
    // Two at once: exactly one takes the lock, and ids are never given twice.
    let (x, y) = tokio::join!(term.begin(new_release("c")), term.begin(new_release("d")));
    let won: Vec<i64> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(won, [2]);
    term.finish(2, ended(false)).await.unwrap();
    let states: Vec<(i64, String)> = log
        .recent(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.state))
        .collect();
    assert_eq!(states, [(2, "failed".into()), (1, "succeeded".into())]);

    // The lock is bound to the member lease.
    let mut raw = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .expect("raw client");
    assert_eq!(term.begin(new_release("e")).await.unwrap(), Ok(3));
    let lock = raw
        .get("/itr/state/deploy/lock", None)
        .await
        .expect("get lock");
    assert_ne!(
        lock.kvs()[0].lease(),
        0,
        "the lock lives on the leader's lease"
    );
    term.finish(3, ended(true)).await.unwrap();

    // A deposed term (its leader key gone behind its back) cannot take the lock, and writes nothing.
    raw.delete(fence.key().to_vec(), None)
        .await
        .expect("delete leader key");
    assert!(matches!(
        term.begin(new_release("f")).await,
        Err(ReleaseError::NotLeader | ReleaseError::Contended)
    ));
    assert_eq!(log.recent(10).await.unwrap().len(), 3);
    assert!(log.get(4).await.unwrap().is_none());
    token.cancel();
    cluster.stopped().await;
}
