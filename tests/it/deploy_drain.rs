//! Draining, releases, rollback, progress and `tend status`, end to end: the tend binary against real sshd on
//! loopback, with a `command` balancer, the steps and a health server that each append a timestamped line to one
//! event log, so the order of everything a deploy did can be replayed.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::deploy_e2e::decode_mail;
use crate::support::sshd::{SshHosts, start_hosts};
use crate::support::{Tend, free_port, run_tend, wait_for};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A health endpoint on loopback: `GET /health/NAME` answers 200, or 503 for the names in `sick`; each request
/// appends `NANOS health NAME` to the event log.
struct HealthServer {
    port: u16,
    sick: Arc<Mutex<BTreeSet<String>>>,
}

impl HealthServer {
    fn start(log: PathBuf) -> HealthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the health server");
        let port = listener.local_addr().expect("address").port();
        let sick = Arc::new(Mutex::new(BTreeSet::new()));
        let shared = sick.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 2048];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let name = path.strip_prefix("/health/").unwrap_or(path).to_owned();
                append(&log, &format!("health {name}"));
                let status = if shared.lock().unwrap().contains(&name) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        HealthServer { port, sick }
    }
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn append(log: &Path, what: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("event log");
    let _ = writeln!(f, "{} {what}", nanos());
}

/// `n` sshd hosts, the event log, the health server and a folder with tend.toml.
struct Drain {
    hosts: SshHosts,
    dir: TempDir,
    health: HealthServer,
    log: PathBuf,
}

impl Drain {
    /// `extra` goes into `[deploy]` (after `batch`); the balancer table comes last.
    fn new(n: usize, batch: usize, extra: &str) -> Drain {
        Self::with_sections(n, batch, extra, "")
    }

    fn with_sections(n: usize, batch: usize, extra: &str, sections: &str) -> Drain {
        let hosts = start_hosts(n);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.log");
        let health = HealthServer::start(log.clone());
        let l = log.display();
        let out = dir.path().join("out");
        let o = out.display();
        let steps = [
            format!(
                "echo $(date +%s%N) step1 {{name}} >> {l}; mkdir -p {o}; echo {{commit}} > {o}/{{host}}"
            ),
            "sleep 0.2".to_owned(),
            format!("echo $(date +%s%N) step3 {{name}} >> {l}"),
        ];
        let text = format!(
            "[store]\npath = {db:?}\n[web]\nenabled = false\n\
             [[alert.notifier]]\nkind = \"file\"\npath = {mail:?}\n\
             {sections}\
             [deploy]\n{login}steps = {steps:?}\nbatch = {batch}\n\
             health_url = \"http://127.0.0.1:{hp}/health/{{name}}\"\nhealth_retries = 1\nhealth_interval = \"50ms\"\n\
             {extra}\n\
             [deploy.balancer]\nkind = \"command\"\n\
             register = \"echo $(date +%s%N) register {{name}} >> {l}\"\n\
             deregister = \"echo $(date +%s%N) deregister {{name}} >> {l}\"\n",
            db = dir.path().join("tend.db"),
            mail = dir.path().join("mail"),
            login = hosts.deploy_login(),
            hp = health.port,
        );
        std::fs::write(dir.path().join("tend.toml"), text).unwrap();
        Drain {
            hosts,
            dir,
            health,
            log,
        }
    }

    fn tend(&self, args: &[&str]) -> Output {
        run_tend(self.dir.path(), args)
    }

    /// The event log as (what, host), in time order.
    fn events(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut rows: Vec<(u128, String, String)> = text
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let at = parts.next()?.parse().ok()?;
                Some((at, parts.next()?.to_owned(), parts.next()?.to_owned()))
            })
            .collect();
        rows.sort_by_key(|r| r.0);
        rows.into_iter()
            .map(|(_, what, host)| (what, host))
            .collect()
    }

    /// The commit deployed on `host`.
    fn deployed(&self, host: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("out").join(host))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Every alert mail: its subject and decoded body.
    fn mails(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.dir.path().join("mail")) else {
            return Vec::new();
        };
        dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .map(|raw| {
                let (subject, body) = decode_mail(&raw);
                format!("{subject}\n{body}")
            })
            .collect()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn position(events: &[(String, String)], what: &str, host: &str) -> usize {
    events
        .iter()
        .position(|(w, h)| w == what && h == host)
        .unwrap_or_else(|| panic!("no {what} for {host} in {events:#?}"))
}

/// Replays the log: every host starts in service; the fewest in service at any moment.
fn fewest_in_service(events: &[(String, String)], hosts: usize) -> usize {
    let mut out: HashMap<&str, bool> = HashMap::new();
    let mut fewest = hosts;
    for (what, host) in events {
        match what.as_str() {
            "deregister" => {
                out.insert(host, true);
            }
            "register" => {
                out.insert(host, false);
            }
            _ => continue,
        }
        fewest = fewest.min(hosts - out.values().filter(|o| **o).count());
    }
    fewest
}

#[test]
fn each_host_leaves_the_balancer_before_its_first_step_and_returns_after_its_health_check() {
    let d = Drain::new(3, 2, "");
    let o = d.tend(&["deploy", "--commit", A]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let events = d.events();
    for host in d.hosts.addresses() {
        let out = position(&events, "deregister", &host);
        let step = position(&events, "step1", &host);
        let last_step = position(&events, "step3", &host);
        let health = position(&events, "health", &host);
        let back = position(&events, "register", &host);
        assert!(
            out < step && step < last_step && last_step < health && health < back,
            "{host}: {events:#?}"
        );
        assert_eq!(d.deployed(&host).as_deref(), Some(A));
    }
    // Non-terminal progress: plain lines per batch and per host, as they happen.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let first = &d.hosts.addresses()[0];
    for line in [
        "Deploying to 3 host(s) in 2 batch(es)".to_owned(),
        "Batch 1/2".to_owned(),
        "Batch 2/2".to_owned(),
        format!("{first}: out of the balancer"),
        format!("{first}: $ sleep 0.2"),
        format!("{first}: back in the balancer"),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?}:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains('\u{1b}'),
        "no terminal escapes when not on a terminal"
    );
}

#[test]
fn min_in_service_holds_at_every_moment_of_a_4_host_rollout() {
    // Batches of 2, but at least 3 of 4 in service: the second host of each batch waits for the first.
    let d = Drain::new(4, 2, "min_in_service = 3");
    let o = d.tend(&["deploy", "--commit", A]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let events = d.events();
    assert_eq!(events.iter().filter(|(w, _)| w == "deregister").count(), 4);
    assert_eq!(events.iter().filter(|(w, _)| w == "register").count(), 4);
    assert_eq!(fewest_in_service(&events, 4), 3, "{events:#?}");

    // The default (all hosts but one batch) lets a whole batch out at once, never more.
    let d = Drain::new(4, 2, "");
    let o = d.tend(&["deploy", "--commit", A]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(fewest_in_service(&d.events(), 4) >= 2, "{:#?}", d.events());
}

#[test]
fn a_host_whose_health_check_fails_stays_out_and_the_alert_says_so() {
    let d = Drain::new(3, 1, "");
    let sick = d.hosts.addresses()[1].clone();
    d.health.sick.lock().unwrap().insert(sick.clone());
    let o = d.tend(&["deploy", "--commit", A]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let events = d.events();
    let left = position(&events, "deregister", &sick);
    assert!(
        !events[left..]
            .iter()
            .any(|(w, h)| w == "register" && *h == sick),
        "{sick} must stay out: {events:#?}"
    );
    let third = &d.hosts.addresses()[2];
    assert!(
        !events.iter().any(|(_, h)| h == third),
        "the rollout stops before host 3: {events:#?}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("left out of the balancer"), "{stdout}");
    let mails = wait_for("the DeployFailed mail", Duration::from_secs(20), || {
        let m = d.mails();
        (!m.is_empty()).then_some(m)
    });
    let mail = mails.join("\n");
    assert!(
        mail.contains(&format!("Left out of the balancer: {sick}")),
        "{mail}"
    );
}

#[test]
fn deploy_a_deploy_b_rollback_runs_a_again_and_releases_list_them() {
    let d = Drain::new(2, 1, "");
    for commit in [A, B] {
        let o = d.tend(&["deploy", "--commit", commit]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    for host in d.hosts.addresses() {
        assert_eq!(d.deployed(&host).as_deref(), Some(B));
    }
    let before = d.events().len();
    let o = d.tend(&["deploy", "--rollback"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Rolling back to release #1 (commit aaaa"),
        "{}",
        text(&o)
    );
    for host in d.hosts.addresses() {
        assert_eq!(d.deployed(&host).as_deref(), Some(A), "{host} back on A");
    }
    let drained = d.events()[before..]
        .iter()
        .filter(|(w, _)| w == "deregister")
        .count();
    assert_eq!(drained, 2, "the rollback drains like a deploy");

    let o = d.tend(&["releases", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let releases = v["releases"].as_array().unwrap();
    let summary: Vec<(i64, &str, &str, &str)> = releases
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["commit"].as_str().unwrap(),
                r["trigger"].as_str().unwrap(),
                r["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, A, "rollback", "succeeded"),
            (2, B, "cli", "succeeded"),
            (1, A, "cli", "succeeded")
        ]
    );
    assert_eq!(releases[0]["rollback_of"], 1);
    assert_eq!(releases[1]["rolled_back_by"], 3);
    assert_eq!(releases[0]["results"].as_array().unwrap().len(), 2);
    assert!(releases[2]["started_by"].as_str().unwrap().contains('@'));
    // The table names the rollback; a second rollback has nothing earlier with another commit.
    let table = String::from_utf8_lossy(&d.tend(&["releases"]).stdout).into_owned();
    assert!(table.contains("rollback to #1"), "{table}");
    assert!(table.contains("succeeded (rolled back by #3)"), "{table}");
    let o = d.tend(&["deploy", "--rollback"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no successful release before #3"),
        "{}",
        text(&o)
    );
}

#[test]
fn json_progress_is_one_object_per_line_and_ends_with_the_summary() {
    let d = Drain::new(2, 1, "");
    let o = d.tend(&["deploy", "--commit", A, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    for kind in [
        "planned",
        "batch",
        "host_started",
        "deregistered",
        "step",
        "health",
        "registered",
        "host_finished",
    ] {
        assert!(kinds.contains(&kind), "no {kind}: {kinds:?}");
    }
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "summary");
    assert_eq!(last["verdict"], "succeeded");
    assert_eq!(last["deploy"], 1);
    assert_eq!(last["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(last["hosts"][0]["result"], "ok");
}

#[test]
fn tend_status_reads_a_running_daemon() {
    let port = free_port();
    let closed = free_port();
    let sections = format!(
        "[monitor]\ninterval = \"2s\"\ntimeout = \"1s\"\nfailure_threshold = 1\n\
         [[monitor.target]]\nname = \"self\"\nurl = \"http://127.0.0.1:{port}/healthz\"\n\
         [[monitor.target]]\nname = \"closed-port\"\nurl = \"http://127.0.0.1:{closed}/\"\n"
    );
    let d = Drain::with_sections(1, 1, "", &sections);
    let o = d.tend(&["deploy", "--commit", A]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let config = d.dir.path().join("tend.toml");
    let body = std::fs::read_to_string(&config).unwrap().replace(
        "[web]\nenabled = false",
        &format!("[web]\nlisten = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&config, body).unwrap();
    let mut daemon = Tend::start(d.dir.path(), &["run"]);
    let url = format!("http://127.0.0.1:{port}");
    let o = wait_for(
        "status to show the closed port down",
        Duration::from_secs(30),
        || {
            let o = d.tend(&["status", "--url", &url]);
            String::from_utf8_lossy(&o.stdout)
                .contains("1 up, 1 down")
                .then_some(o)
        },
    );
    let screen = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "a monitor is down: {screen}");
    assert!(screen.contains("DOWN closed-port"), "{screen}");
    assert!(
        screen.contains("Release:   #1 aaaaaaaaaaaa succeeded (1/1 hosts ok), by cli"),
        "{screen}"
    );
    assert!(screen.contains("Fleet:     no autoscaler"), "{screen}");
    assert!(screen.contains("Cluster:   single replica"), "{screen}");
    daemon.stop();
    let o = d.tend(&["status", "--url", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unreachable"),
        "{}",
        text(&o)
    );
}
