//! Monitoring across three `tend run` replicas on a real 3-member etcd cluster, against one local target server
//! that counts hits per path: the targets are shared out (each checked about once per interval in all, not three
//! times), a killed replica's targets are taken over within one interval and the lease, and a "down" seen from one
//! place only (a replica whose source address the target refuses) is not declared unless `confirm = 1`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::support::etcd::EtcdCluster;
use crate::support::http_get;
use crate::support::replicas::{Replica, agreed_leader, replica_config};
use crate::support::smtp::SmtpSink;
use crate::support::target_server::TargetServer;

const LEASE: Duration = Duration::from_secs(3);
const NAMES: [&str; 3] = ["tend-a", "tend-b", "tend-c"];

/// etcd, an SMTP sink, the target server and the replicas' folder.
struct Rig {
    etcd: EtcdCluster,
    smtp: SmtpSink,
    server: TargetServer,
    /// Runs the target server.
    _rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let server = rt.block_on(TargetServer::start());
        Rig {
            etcd: EtcdCluster::start(3),
            smtp: SmtpSink::start(),
            server,
            _rt: rt,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A replica's config: `[cluster]`, `[monitor]` with `monitor` lines, and the targets `/t/NAME` for `names`.
    fn config(&self, monitor: &str, names: &[String]) -> String {
        let mut c = format!(
            r#"{head}[monitor]
timeout = "800ms"
{monitor}
[monitor.storm]
share = 1.0
min_failing = 100000
"#,
            head = replica_config(
                &self.etcd,
                self.smtp.port,
                LEASE,
                "/mon",
                "storm_limit = 1000"
            ),
        );
        for name in names {
            c += &format!(
                "[[monitor.target]]\nname = \"{name}\"\nurl = \"{}\"\n",
                self.server.url(&format!("/t/{name}"))
            );
        }
        c
    }

    /// Hits on `/t/...` so far, by target name.
    fn hits(&self) -> std::collections::HashMap<String, usize> {
        self.server
            .hits()
            .into_iter()
            .filter_map(|(p, n)| Some((p.strip_prefix("/t/")?.to_string(), n)))
            .collect()
    }

    fn mails_about(&self, name: &str) -> Vec<String> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| {
                m.lines()
                    .any(|l| l.starts_with("Subject:") && l.contains(name))
            })
            .collect()
    }
}

/// A metric's value in a replica's `/metrics` (summed over its series), 0 when absent.
fn metric(replica: &Replica, name: &str) -> f64 {
    let text = http_get(replica.port, "/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn checks(replica: &Replica) -> f64 {
    metric(replica, "tend_monitor_checks_total")
}

fn total(hits: &std::collections::HashMap<String, usize>) -> usize {
    hits.values().sum()
}

#[test]
fn targets_are_shared_out_and_taken_over_within_an_interval_and_the_lease() {
    let rig = Rig::new();
    let names: Vec<String> = (0..300).map(|i| format!("site{i:03}")).collect();
    let config = rig.config("interval = \"3s\"", &names);
    let mut replicas: Vec<Replica> = NAMES
        .iter()
        .map(|n| Replica::start(rig.dir.path(), n, &config))
        .collect();
    let all: Vec<&Replica> = replicas.iter().collect();
    agreed_leader(&all, 3, Duration::from_secs(30));
    // One interval (and a second) for every target's next slot to see the three members.
    std::thread::sleep(Duration::from_secs(4));

    let (before, checks_before) = (
        rig.hits(),
        all.iter().map(|r| checks(r)).collect::<Vec<_>>(),
    );
    std::thread::sleep(Duration::from_secs(30));
    let (after, checks_after) = (
        rig.hits(),
        all.iter().map(|r| checks(r)).collect::<Vec<_>>(),
    );
    let hits = total(&after) - total(&before);
    eprintln!("hits in 30 s: {hits}");
    assert!(
        (2700..=3300).contains(&hits),
        "300 targets every 3 s for 30 s should be hit about 3000 times in all, not {hits}"
    );
    for (r, (b, a)) in all.iter().zip(checks_before.iter().zip(&checks_after)) {
        assert!(
            a - b > 300.0,
            "{} checked {} targets' worth in 30 s",
            r.name,
            a - b
        );
    }

    // kill -9 one replica: each target is hit again within interval + lease + 2 s.
    let at_kill = rig.hits();
    let killed = Instant::now();
    replicas[1].kill9();
    let limit = Duration::from_secs(3) + LEASE + Duration::from_secs(2);
    let mut waiting: Vec<&String> = names.iter().collect();
    let mut slowest = Duration::ZERO;
    while !waiting.is_empty() && killed.elapsed() < limit + Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let now = rig.hits();
        let elapsed = killed.elapsed();
        waiting.retain(|n| {
            let hit = now.get(*n).copied().unwrap_or(0) > at_kill.get(*n).copied().unwrap_or(0);
            if hit {
                slowest = slowest.max(elapsed);
            }
            !hit
        });
    }
    assert!(
        waiting.is_empty(),
        "never hit again after the kill: {waiting:?}"
    );
    assert!(
        slowest <= limit,
        "the last target was hit again {slowest:?} after the kill (limit {limit:?})"
    );
}

/// A target tend-c owns among the three (rendezvous over the member names), and tend-c's source address.
fn owned_by_c() -> (String, IpAddr) {
    let members: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    let name = (0..)
        .map(|i| format!("shop{i}"))
        .find(|n| tend::cluster::rendezvous::owner(n, &members) == Some("tend-c"))
        .expect("some name tend-c owns");
    (name, "127.0.0.2".parse().expect("address"))
}

/// Three replicas, tend-c checking from 127.0.0.2, which the target server refuses; `confirm` as given.
fn refused_from_one_place(confirm: usize) -> (Rig, Vec<Replica>, String) {
    let rig = Rig::new();
    let (name, source) = owned_by_c();
    rig.server.refuse_from(source);
    let common = format!("interval = \"1s\"\nfailure_threshold = 2\nconfirm = {confirm}");
    let replicas: Vec<Replica> = NAMES
        .iter()
        .map(|n| {
            let extra = if *n == "tend-c" {
                format!("{common}\nsource_address = \"{source}\"")
            } else {
                common.clone()
            };
            Replica::start(
                rig.dir.path(),
                n,
                &rig.config(&extra, std::slice::from_ref(&name)),
            )
        })
        .collect();
    let all: Vec<&Replica> = replicas.iter().collect();
    agreed_leader(&all, 3, Duration::from_secs(30));
    (rig, replicas, name)
}

#[test]
fn a_down_seen_from_one_place_only_is_not_declared_with_confirm_2() {
    let (rig, replicas, name) = refused_from_one_place(2);
    // tend-c owns it once the three are members; its checks fail, the others see it up.
    let c = &replicas[2];
    crate::support::wait_for(
        "tend-c to count a disagreement",
        Duration::from_secs(30),
        || (metric(c, "tend_monitor_disagreements_total") >= 1.0).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        rig.server
            .peers()
            .contains(&"127.0.0.2".parse::<IpAddr>().expect("ip")),
        "tend-c checked from its source address"
    );
    assert_eq!(rig.mails_about(&name), Vec::<String>::new(), "no mail");
    let monitors = http_get(replicas[0].port, "/api/monitors").unwrap_or_default();
    assert!(
        !monitors.contains("\"state\":\"down\""),
        "nobody shows it down: {monitors}"
    );
    assert!(c.log().contains("Monitor replicas disagree"), "{}", c.log());
}

#[test]
fn a_down_seen_from_one_place_is_declared_with_confirm_1_by_its_owner() {
    let (rig, replicas, name) = refused_from_one_place(1);
    let mails = crate::support::wait_for("the down mail", Duration::from_secs(30), || {
        let m = rig.mails_about(&name);
        (!m.is_empty()).then_some(m)
    });
    assert!(
        mails[0].contains(&format!("{name} is down")),
        "{}",
        mails[0]
    );
    // Every replica shows it down, with where it was seen from.
    crate::support::wait_for("the shared state", Duration::from_secs(10), || {
        let page = http_get(replicas[0].port, "/api/monitors")?;
        (page.contains("\"state\":\"down\"") && page.contains("tend-c")).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rig.mails_about(&name).len(), 1, "one mail only");

    // Its owner dies: another replica takes it over from the shared state, sees it up from where it stands and
    // ends the open outage (one "up again" mail), without a second "down" mail.
    let mut replicas = replicas;
    replicas[2].kill9();
    let up = crate::support::wait_for("the up mail", Duration::from_secs(30), || {
        let m: Vec<String> = rig
            .mails_about(&name)
            .into_iter()
            .filter(|m| m.contains("is up again"))
            .collect();
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(up.len(), 1, "{up:?}");
    std::thread::sleep(Duration::from_secs(2));
    let downs = rig
        .mails_about(&name)
        .into_iter()
        .filter(|m| m.contains("is down"))
        .count();
    assert_eq!(downs, 1, "the takeover did not alert the outage again");
}
