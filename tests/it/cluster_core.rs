//! The cluster layer against a real three-member etcd: membership, failover (clean and crashed), fencing
//! of a leader that was SIGSTOPped for longer than its lease, claims, and etcd members dying.
//!
//! Most replicas run in this process (several `Cluster::join` with different names). A replica that must
//! be crashed (SIGKILL) or paused (SIGSTOP) runs as a child process: this test binary started again on the
//! test `a_replica_alone_joins_claims_and_leads` with `TEND_CHILD_ETCD` set, which then reports what it sees
//! as `CHILD ...` lines on stdout. The tests take turns (a lock), so their lease timings do not compete for
//! the CPU.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use tend::cluster::{
    Claim, Cluster, ClusterConfig, ClusterError, ClusterEvent, Health, MemberInfo,
};
use tend::metrics::Metrics;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::etcd::EtcdCluster;

const LEASE: Duration = Duration::from_secs(3);
const SLACK: Duration = Duration::from_secs(2);

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(etcd: &EtcdCluster, name: &str) -> ClusterConfig {
    let mut c = ClusterConfig::new(etcd.endpoints());
    c.name = Some(name.into());
    c.lease = LEASE;
    c.prefix = "/it".into();
    c
}

/// An in-process replica and its shutdown token.
struct Replica {
    cluster: Cluster,
    token: CancellationToken,
    metrics: Metrics,
}

/// Logs of the cluster layer on stderr when TEND_TEST_LOG is set (debugging aid).
fn log_if_asked() {
    use tracing_subscriber::prelude::*;
    if std::env::var_os("TEND_TEST_LOG").is_some() {
        let only_tend =
            tracing_subscriber::filter::Targets::new().with_target("tend", tracing::Level::DEBUG);
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(only_tend),
            )
            .try_init();
    }
}

async fn join(etcd: &EtcdCluster, name: &str) -> Replica {
    log_if_asked();
    let config = config(etcd, name);
    let me = MemberInfo::for_config(&config, format!("http://{name}:8080")).expect("member info");
    let token = CancellationToken::new();
    let metrics = Metrics::new();
    let cluster = Cluster::join(&config, me, &metrics, token.clone())
        .await
        .unwrap_or_else(|e| panic!("{name} cannot join: {e:#}"));
    Replica {
        cluster,
        token,
        metrics,
    }
}

impl Replica {
    fn leads(&self) -> bool {
        self.cluster.leadership().borrow().is_some()
    }
    fn member_names(&self) -> Vec<String> {
        self.cluster
            .members()
            .borrow()
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }
    fn gauge(&self, name: &str) -> String {
        let text = self.metrics.render();
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_string()
    }
}

/// Polls `f` every 20 ms until it returns Some; panics naming `what` after `deadline`.
async fn until<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The one replica that leads, once exactly one does and every replica observes it.
async fn sole_leader<'a>(replicas: &[&'a Replica], deadline: Duration) -> &'a Replica {
    until(
        "exactly one leader that every replica observes",
        deadline,
        || {
            let leaders: Vec<_> = replicas.iter().filter(|r| r.leads()).collect();
            let [leader] = leaders.as_slice() else {
                return None;
            };
            let name = leader.cluster.name().to_string();
            replicas
                .iter()
                .all(|r| r.cluster.leader().as_deref() == Some(name.as_str()))
                .then_some(**leader)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_see_each_other_and_agree_on_one_leader() {
    let _turn = TURN.lock().await;
    let etcd = EtcdCluster::start(3);
    let (a, b, c) = (
        join(&etcd, "a").await,
        join(&etcd, "b").await,
        join(&etcd, "c").await,
    );
    let all = [&a, &b, &c];
    for r in all {
        let mut members = r.cluster.members();
        tokio::time::timeout(SLACK, members.wait_for(|m| m.len() == 3))
            .await
            .unwrap_or_else(|_| panic!("{} sees {:?}", r.cluster.name(), r.member_names()))
            .expect("member watch");
        assert_eq!(r.member_names(), ["a", "b", "c"]);
    }
    let leader = sole_leader(&all, LEASE + SLACK).await;
    for r in all {
        let is = std::ptr::eq(r, leader);
        assert_eq!(
            r.gauge("tend_cluster_leader"),
            format!("tend_cluster_leader {}", u8::from(is))
        );
        assert_eq!(r.gauge("tend_cluster_members"), "tend_cluster_members 3");
        let status = serde_json::to_value(r.cluster.status()).unwrap();
        assert_eq!(status["leader"], leader.cluster.name());
        assert_eq!(status["etcd"], "ok");
        assert_eq!(status["members"][0]["address"], "http://a:8080");
        assert_eq!(r.cluster.health(), Health::Ok);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_over_at_once_and_a_crash_within_the_lease() {
    let _turn = TURN.lock().await;
    let etcd = EtcdCluster::start(3);
    // Crash: the child leads (it joins first), then is SIGKILLed without resigning or revoking.
    let mut x = ChildReplica::start(&etcd, "x", None);
    let first = x
        .expect("x to lead", Duration::from_secs(10), |l| {
            l.starts_with("lead ")
        })
        .await;
    let (a, b, c) = (
        join(&etcd, "a").await,
        join(&etcd, "b").await,
        join(&etcd, "c").await,
    );
    let all = [&a, &b, &c];
    until("every replica to observe x leading", SLACK, || {
        all.iter()
            .all(|r| r.cluster.leader().as_deref() == Some("x"))
            .then_some(())
    })
    .await;
    let killed = Instant::now();
    x.kill();
    let leader = sole_leader(&all, LEASE + SLACK).await;
    let took = killed.elapsed();
    println!(
        "crash: {} leads {took:?} after x was killed ({first})",
        leader.cluster.name()
    );
    assert!(
        took >= Duration::from_secs(1),
        "a crashed leader's lease must run out first ({took:?})"
    );
    until("x to drop out of the members", LEASE + SLACK, || {
        (a.member_names() == ["a", "b", "c"]).then_some(())
    })
    .await;

    // Clean stop: the leader resigns and revokes; another leads at once.
    let mut events = leader.cluster.events();
    let stopped = Instant::now();
    leader.token.cancel();
    let rest: Vec<&Replica> = all
        .iter()
        .copied()
        .filter(|r| !std::ptr::eq(*r, leader))
        .collect();
    let next = sole_leader(&rest, Duration::from_secs(2)).await;
    let took = stopped.elapsed();
    println!(
        "clean stop: {} leads {took:?} after {} stopped",
        next.cluster.name(),
        leader.cluster.name()
    );
    assert!(took < Duration::from_millis(1500), "handover took {took:?}");
    tokio::time::timeout(SLACK, leader.cluster.stopped())
        .await
        .expect("stopped");
    assert_eq!(events.recv().await.unwrap(), ClusterEvent::LeadershipLost);
    assert!(!leader.leads());
    assert_eq!(leader.gauge("tend_cluster_leader"), "tend_cluster_leader 0");
    until("the stopped replica to leave the members", SLACK, || {
        (next.member_names().len() == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_is_fenced_until_it_wins_again() {
    let _turn = TURN.lock().await;
    let etcd = EtcdCluster::start(3);
    let mut p = ChildReplica::start(&etcd, "p", None);
    let lead = p
        .expect("p to lead", Duration::from_secs(10), |l| {
            l.starts_with("lead ")
        })
        .await;
    let old_rev: i64 = field(&lead, "rev");
    p.expect("p's fenced writes to work", SLACK, |l| {
        l == format!("probe rev={old_rev} check=ok put=ok")
    })
    .await;
    let (a, b) = (join(&etcd, "a").await, join(&etcd, "b").await);
    until("p, a and b to be members", SLACK, || {
        (a.member_names() == ["a", "b", "p"]).then_some(())
    })
    .await;

    let paused = Instant::now();
    p.signal("STOP");
    let next = sole_leader(&[&a, &b], LEASE + SLACK).await;
    println!(
        "{} leads {:?} after p was stopped",
        next.cluster.name(),
        paused.elapsed()
    );
    let fence = next.cluster.leadership().borrow().clone().expect("fence");
    assert!(fence.rev() > old_rev);
    next.cluster
        .put_fenced(&fence, "probe", &json!({"by": next.cluster.name()}))
        .await
        .expect("fenced put");
    until("p to drop out (its lease expired)", SLACK, || {
        (a.member_names() == ["a", "b"]).then_some(())
    })
    .await;
    tokio::time::sleep_until(paused + 2 * LEASE).await; // the pause itself: twice the lease
    p.signal("CONT");

    // The very first probe after the pause fails, locally and in etcd, and so does every later one.
    let resumed = p
        .expect("p's first probe after the pause", SLACK, |l| {
            l.ends_with("after_gap")
        })
        .await;
    assert_eq!(
        resumed,
        format!("probe rev={old_rev} check=fail put=fenced after_gap")
    );
    if !p.seen().iter().any(|l| l == "follow") {
        p.expect("p to see it no longer leads", SLACK, |l| l == "follow")
            .await;
    }
    until("p to rejoin with a new lease", LEASE + SLACK, || {
        (a.member_names() == ["a", "b", "p"]).then_some(())
    })
    .await;
    let probe: serde_json::Value = a.cluster.get_json("probe").await.unwrap().expect("probe");
    assert_eq!(
        probe["by"],
        next.cluster.name(),
        "p's stale fence never wrote"
    );
    assert!(
        p.seen().iter().all(|l| !l.starts_with("lead ")),
        "p led again without winning: {:?}",
        p.seen()
    );
    assert_eq!(
        sole_leader(&[&a, &b], SLACK).await.cluster.name(),
        next.cluster.name()
    );

    // It leads again only after a new campaign: a and b stop, p wins a new term with a new revision.
    a.token.cancel();
    b.token.cancel();
    let again = p
        .expect("p to win a new term", LEASE + SLACK, |l| {
            l.starts_with("lead ")
        })
        .await;
    let new_rev: i64 = field(&again, "rev");
    assert!(new_rev > fence.rev(), "{again} after rev {}", fence.rev());
    p.expect("p's new fence to work", SLACK, |l| {
        l == format!("probe rev={new_rev} check=ok put=ok")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_refuses_a_fenced_write_once_the_leader_key_is_gone() {
    let _turn = TURN.lock().await;
    let etcd = EtcdCluster::start(3);
    let solo = join(&etcd, "solo").await;
    let fence = until("solo to lead", LEASE + SLACK, || {
        solo.cluster.leadership().borrow().clone()
    })
    .await;
    solo.cluster
        .put_fenced(&fence, "s", &1)
        .await
        .expect("fenced put");
    // Take the leader key away behind its back (as an expiry unseen by a paused process would): with no
    // other candidate nothing tells it, so its fence still checks locally, and etcd's compare refuses.
    let mut raw = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .expect("raw client");
    raw.delete(fence.key().to_vec(), None)
        .await
        .expect("delete leader key");
    fence.check().expect("the local check cannot know");
    assert!(matches!(
        solo.cluster.put_fenced(&fence, "s", &2).await,
        Err(ClusterError::Fenced)
    ));
    assert_eq!(solo.cluster.get_json::<i32>("s").await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_go_to_one_replica_and_are_taken_over_when_it_dies() {
    let _turn = TURN.lock().await;
    let etcd = EtcdCluster::start(3);
    let (a, b) = (join(&etcd, "a").await, join(&etcd, "b").await);
    assert_eq!(a.cluster.claim("alert/1").await.unwrap(), Claim::Won);
    assert_eq!(
        a.cluster.claim("alert/1").await.unwrap(),
        Claim::Won,
        "claiming again is idempotent"
    );
    assert_eq!(
        b.cluster.claim("alert/1").await.unwrap(),
        Claim::HeldBy("a".into())
    );
    a.cluster
        .mark_done("alert/1", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        b.cluster.claim("alert/1").await.unwrap(),
        Claim::Done { by: "a".into() }
    );

    // A failed delivery is released and can be claimed by another replica.
    assert_eq!(a.cluster.claim("alert/2").await.unwrap(), Claim::Won);
    b.cluster.release("alert/2").await.unwrap(); // not b's: left alone
    assert_eq!(
        b.cluster.claim("alert/2").await.unwrap(),
        Claim::HeldBy("a".into())
    );
    a.cluster.release("alert/2").await.unwrap();
    assert_eq!(b.cluster.claim("alert/2").await.unwrap(), Claim::Won);

    // The done record outlives its member's lease; a claim dies with it.
    a.token.cancel();
    tokio::time::timeout(SLACK, a.cluster.stopped())
        .await
        .expect("a stopped");
    assert_eq!(
        b.cluster.claim("alert/1").await.unwrap(),
        Claim::Done { by: "a".into() }
    );

    // A crashed claimer's claim is taken over once its lease runs out.
    let mut x = ChildReplica::start(&etcd, "x", Some("alert/3"));
    x.expect("x to win the claim", Duration::from_secs(10), |l| {
        l == "claim Won"
    })
    .await;
    assert_eq!(
        b.cluster.claim("alert/3").await.unwrap(),
        Claim::HeldBy("x".into())
    );
    let killed = Instant::now();
    x.kill();
    let mut answer = None;
    while killed.elapsed() < LEASE + SLACK {
        let c = b.cluster.claim("alert/3").await.unwrap();
        if c == Claim::Won {
            answer = Some(killed.elapsed());
            break;
        }
        assert_eq!(c, Claim::HeldBy("x".into()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = answer.expect("b to take over x's claim within lease + 2 s");
    println!("claim taken over {took:?} after x was killed");
    assert!(matches!(
        b.cluster.claim("").await,
        Err(ClusterError::InvalidKey { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_etcd_member_down_changes_nothing_and_all_down_degrades_then_recovers() {
    let _turn = TURN.lock().await;
    let mut etcd = EtcdCluster::start(3);
    let (a, b, c) = (
        join(&etcd, "a").await,
        join(&etcd, "b").await,
        join(&etcd, "c").await,
    );
    let all = [&a, &b, &c];
    let leader = sole_leader(&all, LEASE + SLACK).await;
    let rev = leader
        .cluster
        .leadership()
        .borrow()
        .as_ref()
        .expect("fence")
        .rev();
    let mut events: Vec<_> = all.iter().map(|r| r.cluster.events()).collect();

    // Kill etcd's raft leader (the worst member to lose); for two leases nothing may change for tend.
    let victim = etcd.leader().expect("etcd leader");
    etcd.kill(victim);
    let window = Instant::now() + 2 * LEASE;
    let mut n = 0;
    while Instant::now() < window {
        let r = all[n % 3];
        r.cluster
            .put_json("k", &n)
            .await
            .unwrap_or_else(|e| panic!("put via {}: {e:?}", r.cluster.name()));
        let back: Option<usize> = all[(n + 1) % 3].cluster.get_json("k").await.expect("get");
        assert_eq!(back, Some(n));
        for r in all {
            assert_eq!(
                r.cluster.leader().as_deref(),
                Some(leader.cluster.name()),
                "{} observes",
                r.cluster.name()
            );
            assert!(r.cluster.health().is_ok(), "{} healthy", r.cluster.name());
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{n} writes and reads with etcd member m{} down", victim + 1);
    let fence = leader
        .cluster
        .leadership()
        .borrow()
        .clone()
        .expect("still leads");
    assert_eq!(fence.rev(), rev, "same term");
    fence.check().expect("fence still good");
    for (r, ev) in all.iter().zip(events.iter_mut()) {
        assert!(ev.try_recv().is_err(), "{} saw an event", r.cluster.name());
        assert_eq!(r.member_names(), ["a", "b", "c"]);
        assert_eq!(r.cluster.health(), Health::Ok);
    }

    // All of etcd down: every replica turns Unreachable within a lease and stops leading.
    let down = Instant::now();
    etcd.stop_all();
    until(
        "every replica to see etcd unreachable",
        LEASE + SLACK,
        || {
            all.iter()
                .all(|r| !r.cluster.health().is_ok())
                .then_some(())
        },
    )
    .await;
    println!("unreachable seen {:?} after etcd went down", down.elapsed());
    assert!(
        all.iter()
            .all(|r| !r.leads() && r.cluster.leader().is_none())
    );
    assert!(fence.check().is_err());
    assert!(matches!(
        leader.cluster.put_fenced(&fence, "k", &0).await,
        Err(ClusterError::Fenced)
    ));
    assert!(
        a.cluster.claim("x").await.is_err(),
        "claims fail (open) without etcd"
    );

    let up = Instant::now();
    etcd.start_all();
    until("every replica to recover", Duration::from_secs(10), || {
        all.iter().all(|r| r.cluster.health().is_ok()).then_some(())
    })
    .await;
    let again = sole_leader(&all, LEASE + SLACK).await;
    println!(
        "recovered, {} leads, {:?} after etcd came back",
        again.cluster.name(),
        up.elapsed()
    );
    until("3 members again", SLACK, || {
        all.iter()
            .all(|r| r.member_names().len() == 3)
            .then_some(())
    })
    .await;
    for (r, ev) in all.iter().zip(events.iter_mut()) {
        let mut seen = Vec::new();
        while let Ok(e) = ev.try_recv() {
            seen.push(e);
        }
        let degraded = seen
            .iter()
            .filter(|e| matches!(e, ClusterEvent::Degraded { .. }))
            .count();
        let recovered = seen
            .iter()
            .filter(|e| matches!(e, ClusterEvent::Recovered { .. }))
            .count();
        assert_eq!(
            (degraded, recovered),
            (1, 1),
            "{}: {seen:?}",
            r.cluster.name()
        );
    }
    let fence = again.cluster.leadership().borrow().clone().expect("fence");
    again
        .cluster
        .put_fenced(&fence, "k", &1)
        .await
        .expect("fenced put after recovery");
}

/// Reads `name=VALUE` out of a `CHILD` line.
fn field<T: std::str::FromStr>(line: &str, name: &str) -> T {
    line.split(' ')
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

/// A replica in a child process (this test binary, running `child_replica`), for SIGKILL and SIGSTOP.
struct ChildReplica {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ChildReplica {
    fn start(etcd: &EtcdCluster, name: &str, claim: Option<&str>) -> ChildReplica {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            "cluster_core::a_replica_alone_joins_claims_and_leads",
            "--exact",
            "--nocapture",
        ])
        .env("TEND_CHILD_ETCD", etcd.endpoints().join(","))
        .env("TEND_CHILD_NAME", name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("TEND_TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
        if let Some(key) = claim {
            cmd.env("TEND_CHILD_CLAIM", key);
        }
        let mut child = cmd.spawn().expect("start the child replica");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(l) = line.strip_prefix("CHILD ") {
                    let _ = tx.send(l.to_string());
                }
            }
        });
        ChildReplica {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line matching `want` (lines before it are kept in `seen`).
    async fn expect(
        &mut self,
        what: &str,
        deadline: Duration,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let end = Instant::now() + deadline;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                if want(&line) {
                    return line;
                }
                self.seen.push(line);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "child replica exited ({status}) before {what}; it said {:?}",
                    self.seen
                );
            }
            assert!(
                Instant::now() < end,
                "timed out after {deadline:?} waiting for {what}; the child said {:?}",
                self.seen
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every line read and not matched so far, plus any waiting now.
    fn seen(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} failed");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildReplica {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("CONT");
        }
        self.kill();
    }
}

/// Run by the test harness, it checks the child replica alone on a 1-member etcd: it joins, claims, leads
/// and its fenced probes succeed. Re-run by the other tests as a child process (`TEND_CHILD_ETCD` set), it
/// *is* that child replica: it joins, optionally claims a key, then every 50 ms probes its latest fence with
/// a fenced write and reports changes (and the first probe after a pause) as `CHILD ...` lines.
#[test]
fn a_replica_alone_joins_claims_and_leads() {
    let Ok(endpoints) = std::env::var("TEND_CHILD_ETCD") else {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let etcd = EtcdCluster::start(1);
        let mut solo = ChildReplica::start(&etcd, "solo", Some("alert/solo"));
        runtime.block_on(async {
            let wait = Duration::from_secs(20);
            solo.expect("joined", wait, |l| l == "joined").await;
            solo.expect("the claim", wait, |l| l == "claim Won").await;
            solo.expect("leadership", wait, |l| l.starts_with("lead rev="))
                .await;
            solo.expect("a fenced probe that holds", wait, |l| {
                l.contains("check=ok put=ok")
            })
            .await;
        });
        return;
    };
    let name = std::env::var("TEND_CHILD_NAME").expect("TEND_CHILD_NAME");
    let claim = std::env::var("TEND_CHILD_CLAIM").ok();
    log_if_asked();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(child_main(endpoints, name, claim));
}

async fn child_main(endpoints: String, name: String, claim: Option<String>) {
    let say = |s: String| println!("CHILD {s}");
    let mut config = ClusterConfig::new(endpoints.split(',').map(String::from).collect());
    config.name = Some(name.clone());
    config.lease = LEASE;
    config.prefix = "/it".into();
    let me = MemberInfo::for_config(&config, "http://child:8080").expect("member");
    let cluster = Cluster::join(&config, me, &Metrics::new(), CancellationToken::new())
        .await
        .expect("child joins");
    say("joined".into());
    if let Some(key) = claim {
        say(format!(
            "claim {:?}",
            cluster.claim(&key).await.expect("claim")
        ));
    }
    let mut leadership = cluster.leadership();
    let mut fence = None;
    let mut last = String::new();
    let mut tick = std::time::Instant::now();
    for seq in 0u64.. {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let gap = tick.elapsed() > Duration::from_secs(1);
        tick = std::time::Instant::now();
        if leadership.has_changed().unwrap_or(false) {
            match leadership.borrow_and_update().clone() {
                Some(f) => {
                    say(format!("lead rev={}", f.rev()));
                    fence = Some(f);
                }
                None => say("follow".into()),
            }
        }
        let Some(f) = &fence else { continue };
        // Check and write at once: right after a pause this is the first thing that runs.
        let check = if f.check().is_ok() { "ok" } else { "fail" };
        let put = match cluster
            .put_fenced(f, "probe", &json!({"by": name, "seq": seq}))
            .await
        {
            Ok(()) => "ok",
            Err(ClusterError::Fenced) => "fenced",
            Err(_) => "error",
        };
        let line = format!("probe rev={} check={check} put={put}", f.rev());
        if gap {
            say(format!("{line} after_gap"));
        } else if line != last {
            say(line.clone());
        }
        last = line;
    }
}
