//! Three `tend run` replicas on a real 3-member etcd cluster, with the AWS emulator as their shared cloud and
//! one SMTP server: one leader scales (and a new one takes over within the lease when it dies, going on from
//! the memory the cluster kept), a paused leader acts no more, every alert goes out once even when its claimer
//! dies, and when etcd is gone every replica keeps watching and alerting on its own.

use std::time::{Duration, Instant, SystemTime};

use crate::support::etcd::EtcdCluster;
use crate::support::moto::Moto;
use crate::support::replicas::{Replica, agreed_leader, replica_config, time_until};
use crate::support::smtp::{Options, SmtpSink};
use crate::support::target_server::{Mode, TargetServer};
use crate::support::wait_for;

const LEASE: Duration = Duration::from_secs(3);
/// What the issue allows beyond the lease for a new leader.
const SLACK: Duration = Duration::from_secs(2);

/// The parts every cluster test shares, and the config text of its replicas.
struct Rig {
    etcd: EtcdCluster,
    _moto: Moto,
    smtp: SmtpSink,
    dir: tempfile::TempDir,
    config: String,
}

impl Rig {
    /// etcd, moto, an SMTP sink (`delay` per recipient), and a config with `[cluster]`, `[cloud]` on moto,
    /// `[scale]` every second and `extra` appended (monitor targets).
    fn new(delay: Option<Duration>, extra: &str) -> Rig {
        let etcd = EtcdCluster::start(3);
        let moto = Moto::start();
        let smtp = SmtpSink::start_with(Options {
            delay,
            ..Options::default()
        });
        let config = format!(
            r#"{head}[cloud]
provider = "aws"
prefix = "web"
[cloud.aws]
region = "us-east-1"
endpoint_url = "{moto}"
image_id = "ami-12c6146b"
instance_type = "t3.micro"
[scale]
interval = "1s"
window = "1m"
min = 1
max = 4
{extra}
"#,
            head = replica_config(
                &etcd,
                smtp.port,
                LEASE,
                "/it",
                "storm_limit = 1000\nretry_initial = \"1s\"\nretry_max = \"2s\"",
            ),
            moto = moto.url(),
        );
        Rig {
            etcd,
            _moto: moto,
            smtp,
            dir: tempfile::tempdir().expect("temp dir"),
            config,
        }
    }

    fn replicas(&self) -> Vec<Replica> {
        ["tend-a", "tend-b", "tend-c"]
            .iter()
            .map(|n| Replica::start(self.dir.path(), n, &self.config))
            .collect()
    }

    /// Mails whose subject line contains `text`.
    fn mails_with(&self, text: &str) -> Vec<String> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| {
                m.lines()
                    .any(|l| l.starts_with("Subject:") && l.contains(text))
            })
            .collect()
    }
}

fn by_name<'a>(replicas: &'a [Replica], name: &str) -> &'a Replica {
    replicas
        .iter()
        .find(|r| r.name == name)
        .expect("a replica of that name")
}

/// Which replicas recorded a scaling decision since `t`.
fn deciders(replicas: &[&Replica], t: SystemTime) -> Vec<String> {
    replicas
        .iter()
        .filter(|r| !r.decisions_since(t).is_empty())
        .map(|r| r.name.clone())
        .collect()
}

#[test]
fn the_leader_killed_hands_over_within_the_lease_and_scaling_goes_on_from_its_memory() {
    let rig = Rig::new(None, "");
    let mut replicas = rig.replicas();
    let all: Vec<&Replica> = replicas.iter().collect();
    let leader = agreed_leader(&all, 3, Duration::from_secs(30));
    // Only the leader decides.
    let t = SystemTime::now();
    wait_for("the leader's decisions", Duration::from_secs(10), || {
        (by_name(&replicas, &leader).decisions_since(t).len() >= 2).then_some(())
    });
    assert_eq!(deciders(&all, t), vec![leader.clone()]);

    let i = replicas
        .iter()
        .position(|r| r.name == leader)
        .expect("leader");
    replicas[i].kill9();
    let killed = Instant::now();
    let rest: Vec<&Replica> = replicas.iter().filter(|r| r.name != leader).collect();
    let took = time_until(
        "another replica to lead",
        LEASE + SLACK + Duration::from_secs(5),
        || rest.iter().all(|r| r.leader().is_some_and(|l| l != leader)),
    );
    assert!(
        took <= LEASE + SLACK,
        "a new leader took {took:?} after the kill (lease {LEASE:?} + {SLACK:?})"
    );
    let new = rest[0].leader().expect("new leader");
    let t = SystemTime::now();
    wait_for(
        "the new leader's decisions",
        Duration::from_secs(10),
        || (by_name(&replicas, &new).decisions_since(t).len() >= 2).then_some(()),
    );
    assert_eq!(deciders(&rest, t), vec![new.clone()]);
    let log = by_name(&replicas, &new).log();
    assert!(
        log.contains("went on from the memory the cluster kept"),
        "the new leader did not load the memory the old one left:\n{log}"
    );
    eprintln!("new leader {new} {:?} after the kill", killed.elapsed());
}

#[test]
fn a_leader_paused_past_its_lease_acts_no_more_when_it_resumes() {
    let rig = Rig::new(None, "");
    let replicas = rig.replicas();
    let all: Vec<&Replica> = replicas.iter().collect();
    let leader = agreed_leader(&all, 3, Duration::from_secs(30));
    let paused = by_name(&replicas, &leader);
    paused.pause();
    std::thread::sleep(LEASE * 2);
    let rest: Vec<&Replica> = replicas.iter().filter(|r| r.name != leader).collect();
    let new = rest[0]
        .leader()
        .expect("a new leader while the old one is paused");
    assert_ne!(new, leader);
    let resumed = SystemTime::now();
    paused.resume();
    // Give the resumed replica every chance to act: its scaling tick is overdue the moment it runs again.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        paused.decisions_since(resumed).is_empty(),
        "the paused leader decided after it resumed: {:?}",
        paused.decisions_since(resumed)
    );
    assert!(!by_name(&replicas, &new).decisions_since(resumed).is_empty());
    assert_eq!(agreed_leader(&all, 3, Duration::from_secs(10)), new);
}

/// `[monitor]` with `n` targets, all on one server's `/`, storm control off, checked every second.
fn targets(server: &TargetServer, n: usize) -> String {
    let mut t = String::from(
        "[monitor]\ninterval = \"1s\"\ntimeout = \"800ms\"\nfailure_threshold = 1\n[monitor.storm]\nshare = 1.0\nmin_failing = 100000\n",
    );
    for i in 0..n {
        t += &format!(
            "[[monitor.target]]\nname = \"site{i:02}\"\nurl = \"{}\"\n",
            server.url("/")
        );
    }
    t
}

#[test]
fn a_burst_of_alerts_goes_out_once_each_even_when_a_claimer_is_killed() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(TargetServer::start());
    // Every replica checks every target (not shared out), so every alert is raised three times and claimed once.
    let monitor = targets(&server, 50).replace("[monitor]\n", "[monitor]\nshare_checks = false\n");
    let rig = Rig::new(Some(Duration::from_millis(300)), &monitor);
    let mut replicas = rig.replicas();
    let all: Vec<&Replica> = replicas.iter().collect();
    agreed_leader(&all, 3, Duration::from_secs(30));
    wait_for("every replica checking", Duration::from_secs(20), || {
        replicas
            .iter()
            .all(|r| r.log().contains("Monitor starting"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    server.set(Mode::Status(503));
    // Kill one replica once the first mails arrive: what it claimed and had not delivered is taken over.
    wait_for("the first down mail", Duration::from_secs(20), || {
        (!rig.mails_with("is down").is_empty()).then_some(())
    });
    replicas[0].kill9();
    let down = wait_for(
        "a down mail for each of the 50",
        Duration::from_secs(60),
        || {
            let mails = rig.mails_with("is down");
            let names: std::collections::BTreeSet<String> = mails
                .iter()
                .filter_map(|m| {
                    m.lines()
                        .find(|l| l.starts_with("Subject:"))
                        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("site")))
                        .map(str::to_string)
                })
                .collect();
            (names.len() == 50).then_some(mails)
        },
    );
    // Settle, then count: the other replicas must not send what was delivered.
    std::thread::sleep(LEASE + SLACK);
    let total = rig.mails_with("is down").len();
    let by_peer: usize = replicas[1..]
        .iter()
        .map(|r| {
            r.log()
                .matches("Alert already delivered by another replica")
                .count()
        })
        .sum();
    eprintln!(
        "{total} down mails; the surviving replicas found {by_peer} already delivered by another"
    );
    assert!(
        by_peer >= 50,
        "the other replicas did not defer to the claims: {by_peer}"
    );
    assert!(
        total <= 51,
        "{total} down mails for 50 alerts (one duplicate at most: the one SMTP case, a mail the killed \
         replica's server accepted just before it died); first count {}",
        down.len()
    );
}

#[test]
fn losing_one_etcd_member_changes_nothing_and_losing_all_works_alone_then_recovers() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(TargetServer::start());
    let mut rig = Rig::new(None, &targets(&server, 1));
    let replicas = rig.replicas();
    let all: Vec<&Replica> = replicas.iter().collect();
    let leader = agreed_leader(&all, 3, Duration::from_secs(30));

    // One etcd member (the raft leader, the hardest case) dies: same leader, same members, still "ok".
    let raft = rig.etcd.leader().unwrap_or(0);
    rig.etcd.kill(raft);
    let end = Instant::now() + LEASE * 2;
    while Instant::now() < end {
        assert_eq!(agreed_leader(&all, 3, Duration::from_secs(5)), leader);
        std::thread::sleep(Duration::from_millis(300));
    }
    rig.etcd.restart(raft);

    // All of etcd dies: every replica says so within the lease, none scales, and a site that goes down is
    // still mailed (without coordination), with ClusterDegraded from each replica.
    rig.etcd.stop_all();
    let lost = SystemTime::now();
    wait_for(
        "every replica to see etcd unreachable",
        LEASE + SLACK + Duration::from_secs(3),
        || {
            replicas
                .iter()
                .all(|r| {
                    r.cluster()
                        .is_some_and(|c| c["etcd"] == "unreachable" && c["leader"].is_null())
                })
                .then_some(())
        },
    );
    let quiet = SystemTime::now();
    server.set(Mode::Status(503));
    wait_for("a down mail without etcd", Duration::from_secs(20), || {
        (!rig.mails_with("site00 is down").is_empty()).then_some(())
    });
    wait_for(
        "ClusterDegraded from each replica",
        Duration::from_secs(20),
        || (rig.mails_with("cannot reach etcd").len() >= 3).then_some(()),
    );
    assert!(
        deciders(&all, quiet).is_empty(),
        "a replica scaled without etcd (lost at {lost:?})"
    );

    // etcd is back: every replica rejoins, one leads, and each says it recovered.
    rig.etcd.start_all();
    agreed_leader(&all, 3, Duration::from_secs(30));
    wait_for(
        "ClusterRecovered from each replica",
        Duration::from_secs(20),
        || (rig.mails_with("reaches etcd again").len() >= 3).then_some(()),
    );
}
