//! `tend deploy` and the signed CI webhook end to end: the tend binary against three real sshd on
//! loopback, its SQLite store, a real SMTP server for the `DeployFailed` mail, and `tend run` serving
//! `POST /hooks/deploy`. "A file on each host" is a file named after the host (`{host}` includes the
//! port), since every sshd runs on this machine.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use tempfile::TempDir;
use tend::deploy::webhook::sign;

use crate::support::smtp::SmtpSink;
use crate::support::sshd::{SshHosts, start_hosts};
use crate::support::{Tend, free_port, http_get, run_tend, wait_for};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const HOOK_COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";
const SECRET: &str = "e2e-webhook-secret-5f1c9a7d3b";

/// Three sshd hosts, an SMTP sink, and a folder with tend.toml (store, log) for the binary.
struct Setup {
    hosts: SshHosts,
    sink: SmtpSink,
    /// tend.toml, tend.db, tend.log.
    dir: TempDir,
    /// Where the steps write one file per host.
    out: TempDir,
    /// The web port of `tend run`.
    port: u16,
}

impl Setup {
    /// Three hosts; `steps(out)` gives the steps given the output folder.
    fn new(steps: impl FnOnce(&Path, &[String]) -> Vec<String>) -> Setup {
        let hosts = start_hosts(3);
        let sink = SmtpSink::start();
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let port = free_port();
        let steps = steps(out.path(), &hosts.addresses());
        let text = format!(
            "[store]\npath = {db:?}\n\
             [web]\nlisten = \"127.0.0.1:{port}\"\n\
             [alert]\ngroup_wait = \"200ms\"\n\
             [[alert.notifier]]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {smtp}\ntls = \"none\"\n\
             from = \"tend@example.com\"\nto = [\"ops@example.com\"]\n\
             [deploy]\n{login}steps = {steps:?}\nbatch = 1\nstep_timeout = \"30s\"\n\
             [deploy.webhook]\nsecret = \"{SECRET}\"\nbranch = \"main\"\n",
            db = dir.path().join("tend.db"),
            smtp = sink.port,
            login = hosts.deploy_login(),
        );
        std::fs::write(dir.path().join("tend.toml"), text).unwrap();
        Setup {
            hosts,
            sink,
            dir,
            out,
            port,
        }
    }

    /// `tend ARGS` in the config folder, to its end (deadline 60 s).
    fn tend(&self, args: &[&str]) -> Output {
        run_tend(self.dir.path(), args)
    }

    fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.dir.path().join("tend.db")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    /// Every row of `deploys`: (id, state, commit, trigger, hosts).
    fn deploys(&self) -> Vec<(i64, String, Option<String>, String, String)> {
        if !self.dir.path().join("tend.db").exists() {
            return Vec::new();
        }
        let c = self.db();
        let mut s = c
            .prepare("SELECT id, state, commit_sha, trigger, hosts FROM deploys ORDER BY id")
            .unwrap();
        s.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn lock_rows(&self) -> i64 {
        self.db()
            .query_row("SELECT count(*) FROM deploy_lock", [], |r| r.get(0))
            .unwrap()
    }

    /// The commit written on `host`, if its file exists.
    fn deployed(&self, host: &str) -> Option<String> {
        std::fs::read_to_string(self.out.path().join(host))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Every file the steps wrote, with its content, sorted.
    fn files(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = std::fs::read_dir(self.out.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

/// Step 1: write `{commit}` into OUT/{host} and say so.
fn write_step(out: &Path) -> String {
    format!(
        "mkdir -p {0} && echo {{commit}} > {0}/{{host}} && echo deployed {{host}}",
        out.display()
    )
}

/// The (host, result) rows of the summary table printed after `Deploy #ID:`, checking its header.
fn summary_table(stdout: &str, id: i64) -> Vec<(String, String)> {
    let table = stdout
        .split(&format!("\nDeploy #{id}:\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no summary table:\n{stdout}"));
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["HOST", "RESULT", "TIME", "DETAIL"], "{table}");
    lines
        .take_while(|l| l.starts_with("127.0.0.1:"))
        .map(|l| {
            let mut cells = l.split_whitespace().map(str::to_owned);
            (cells.next().unwrap(), cells.next().unwrap_or_default())
        })
        .collect()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_deploy_across_three_hosts_succeeds_and_is_recorded() {
    let s = Setup::new(|out, _| vec![write_step(out), "echo second step".into()]);
    let o = s.tend(&["deploy", "--commit", COMMIT]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let addresses = s.hosts.addresses();
    for host in &addresses {
        assert_eq!(s.deployed(host).as_deref(), Some(COMMIT), "{host}");
        assert!(
            stdout.contains(&format!("{host} | deployed {host}")),
            "output of {host} streamed with its prefix:\n{stdout}"
        );
    }
    let expected: Vec<(String, String)> = addresses
        .iter()
        .map(|h| (h.clone(), "ok".to_owned()))
        .collect();
    assert_eq!(summary_table(&stdout, 1), expected, "{stdout}");

    let deploys = s.deploys();
    assert_eq!(
        deploys,
        [(
            1,
            "succeeded".to_owned(),
            Some(COMMIT.to_owned()),
            "cli".to_owned(),
            addresses.join(" ")
        )]
    );
    let (finished, summary): (Option<i64>, Option<String>) = s
        .db()
        .query_row(
            "SELECT finished_at, summary FROM deploys WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(finished.is_some());
    assert!(summary.unwrap().contains(&addresses[2]));
    assert_eq!(s.lock_rows(), 0, "the lock is released");
    assert!(s.sink.messages().is_empty(), "no alert for a success");
}

#[test]
fn a_failing_step_on_host_2_stops_the_rollout_and_mails_deploy_failed() {
    let s = Setup::new(|out, hosts| {
        vec![
            write_step(out),
            format!(
                "echo checking {{host}}; test {{host}} != {} || (echo fatal: migration failed; exit 3)",
                hosts[1]
            ),
        ]
    });
    let addresses = s.hosts.addresses();
    let o = s.tend(&["deploy", "--commit", COMMIT]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(s.deployed(&addresses[0]).as_deref(), Some(COMMIT));
    assert_eq!(
        s.deployed(&addresses[1]).as_deref(),
        Some(COMMIT),
        "host 2 ran step 1"
    );
    assert_eq!(s.deployed(&addresses[2]), None, "host 3 must not start");
    assert!(
        !stdout.contains(&format!("{} |", addresses[2])),
        "nothing ran on host 3:\n{stdout}"
    );
    let expected: Vec<(String, String)> = addresses
        .iter()
        .zip(["ok", "FAILED", "skipped"])
        .map(|(h, r)| (h.clone(), r.to_owned()))
        .collect();
    assert_eq!(summary_table(&stdout, 1), expected, "{stdout}");
    let failed_row = stdout
        .lines()
        .rfind(|l| l.starts_with(&format!("{} ", addresses[1])))
        .unwrap();
    assert!(failed_row.ends_with(": exit code 3"), "{failed_row}");
    assert_eq!(s.deploys()[0].1, "failed");
    assert_eq!(s.lock_rows(), 0, "the lock is released after a failure");

    let mails = s.sink.wait_for(1);
    let (subject, body) = mails
        .iter()
        .map(|m| decode_mail(m))
        .find(|(subject, _)| subject.contains("Deploy #1 failed"))
        .unwrap_or_else(|| panic!("no DeployFailed mail among {mails:#?}"));
    assert!(subject.starts_with("ERROR: "), "{subject}");
    assert!(
        subject.contains(&format!("failed on {}", addresses[1])),
        "{subject}"
    );
    assert!(body.contains("Exit code: 3"), "{body}");
    assert!(body.contains("Last lines of output:"), "{body}");
    assert!(
        body.contains(&format!("  checking {}", addresses[1])),
        "{body}"
    );
    assert!(body.contains("  fatal: migration failed"), "{body}");
    assert!(body.contains("step 2"), "{body}");
}

#[test]
fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let s = Setup::new(|out, _| vec![write_step(out)]);
    let addresses = s.hosts.addresses();
    let o = s.tend(&["deploy", "--dry-run", "--commit", COMMIT]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "Deploy plan: 3 host(s) in 3 batch(es); commit {COMMIT}"
        )),
        "{stdout}"
    );
    for (i, host) in addresses.iter().enumerate() {
        let batch = stdout
            .split(&format!("Batch {} (1 host(s), in parallel):\n", i + 1))
            .nth(1)
            .unwrap_or_else(|| panic!("no batch {}:\n{stdout}", i + 1));
        let mut lines = batch.lines();
        let first = lines.next().unwrap();
        assert!(first.ends_with(&format!("(ssh {host})")), "{stdout}");
        let command = lines.next().unwrap();
        assert!(command.starts_with("    $ mkdir -p "), "{stdout}");
        assert!(
            command.contains(COMMIT) && command.contains(host),
            "{stdout}"
        );
    }
    assert!(s.files().is_empty(), "nothing ran: {:?}", s.files());
    assert!(s.deploys().is_empty(), "no deploy recorded");

    // --only narrows the plan to one host.
    let o = s.tend(&[
        "deploy",
        "--dry-run",
        "--only",
        &addresses[1],
        "--commit",
        COMMIT,
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 host(s) in 1 batch(es)"), "{stdout}");
    assert!(stdout.contains(&addresses[1]), "{stdout}");
    assert!(
        !stdout.contains(&addresses[0]) && !stdout.contains(&addresses[2]),
        "{stdout}"
    );
    assert!(s.files().is_empty());
    assert!(s.deploys().is_empty());
}

/// A child process killed and reaped on drop (also when the test panics).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_deploy_lock_refuses_a_live_holder_and_takes_over_a_dead_one() {
    let s = Setup::new(|out, _| vec![write_step(out)]);
    // A dry run creates the store (and its schema) without deploying.
    let o = s.tend(&["deploy", "--dry-run", "--commit", COMMIT]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut sleeper = Reaped(Command::new("sleep").arg("30").spawn().unwrap());
    let holder = format!("x@{} pid {}", hostname.trim(), sleeper.0.id());
    s.db()
        .execute_batch(&format!(
            "INSERT INTO deploys (id, started_at, trigger, commit_sha, branch, hosts, state)
             VALUES (42, 0, 'cli', 'abc1234', NULL, 'elsewhere', 'running');
             INSERT INTO deploy_lock (id, deploy_id, holder, since) VALUES (1, 42, '{holder}', 0);"
        ))
        .unwrap();

    let o = s.tend(&["deploy", "--commit", COMMIT]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        format!("{stdout}{stderr}")
            .contains(&format!("another deploy is running: #42 by {holder}")),
        "the refusal names the holder:\n{stdout}\n{stderr}"
    );
    assert!(s.files().is_empty(), "nothing ran: {:?}", s.files());
    assert_eq!(s.deploys().len(), 1, "no deploy recorded");
    assert_eq!(s.deploys()[0].1, "running");

    // The holder dies (a crash): the next deploy takes the stale lock over.
    let _ = sleeper.0.kill();
    let _ = sleeper.0.wait();
    let o = s.tend(&["deploy", "--commit", COMMIT]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let states: Vec<(i64, String)> = s.deploys().into_iter().map(|d| (d.0, d.1)).collect();
    assert_eq!(
        states,
        [(42, "abandoned".to_owned()), (43, "succeeded".to_owned())]
    );
    for host in s.hosts.addresses() {
        assert_eq!(s.deployed(&host).as_deref(), Some(COMMIT), "{host}");
    }
    assert_eq!(s.lock_rows(), 0);
}

/// `POST /hooks/deploy` over raw HTTP/1.1; (status, body). The request is written on a thread so a
/// server that answers early (413) is read while the client is still sending.
pub(crate) fn post_hook(port: u16, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!(
        "POST /hooks/deploy HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = stream.try_clone().unwrap();
    let body = body.to_vec();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    });
    let mut response = Vec::new();
    // A reset after the answer (the server closing on an unread body) still leaves the answer here.
    let _ = stream.read_to_end(&mut response);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {response:?}"));
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// A request that must be refused: (what, headers, body, status).
type Refused<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);

pub(crate) fn push_body(branch: &str, commit: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0".repeat(40),
        "after": commit,
        "repository": {"full_name": "acme/shop"},
        "pusher": {"name": "dev"},
        "commits": [],
    })
    .to_string()
    .into_bytes()
}

fn deploy_json(port: u16, id: i64) -> Option<serde_json::Value> {
    let raw = http_get(port, &format!("/api/deploys/{id}"))?;
    if !raw.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(raw.split("\r\n\r\n").nth(1)?).ok()
}

#[test]
fn the_signed_webhook_deploys_and_refuses_everything_else() {
    let s = Setup::new(|out, _| vec![write_step(out)]);
    let addresses = s.hosts.addresses();
    let mut tend = Tend::start(s.dir.path(), &["run"]);
    wait_for("the web server", Duration::from_secs(20), || {
        http_get(s.port, "/api/deploys/1").filter(|r| r.starts_with("HTTP/1.1 404"))
    });

    let body = push_body("main", HOOK_COMMIT);
    let signature = sign(SECRET, &body);
    let valid = [
        ("X-Hub-Signature-256", signature.as_str()),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Event", "push"),
    ];
    let (status, answer) = post_hook(s.port, &valid, &body);
    assert_eq!(status, 202, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let id = answer["deploy"].as_i64().unwrap();
    assert_eq!(answer["url"], format!("/api/deploys/{id}"));
    let done = wait_for(
        "the webhook deploy to finish",
        Duration::from_secs(60),
        || deploy_json(s.port, id).filter(|d| d["state"] != "running"),
    );
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["commit"], HOOK_COMMIT);
    assert_eq!(done["branch"], "main");
    assert_eq!(done["trigger"], "webhook");
    assert_eq!(done["hosts"], serde_json::json!(addresses));
    for host in &addresses {
        assert_eq!(s.deployed(host).as_deref(), Some(HOOK_COMMIT), "{host}");
    }
    let files = s.files();
    let rows = s.deploys().len();
    assert_eq!(rows, 1);

    // Each of these is refused, and nothing runs.
    let other = push_body("main", COMMIT);
    let other_sig = sign(SECRET, &other);
    let wrong_sig = sign("another-secret-of-enough-length", &other);
    let dev = push_body("dev", COMMIT);
    let dev_sig = sign(SECRET, &dev);
    let huge = vec![b' '; 10 * 1024 * 1024];
    let huge_sig = sign(SECRET, &huge);
    let cases: [Refused<'_>; 5] = [
        (
            "wrong signature",
            vec![
                ("X-Hub-Signature-256", wrong_sig.as_str()),
                ("X-GitHub-Delivery", "d-wrong-sig"),
                ("X-GitHub-Event", "push"),
            ],
            &other,
            401,
        ),
        (
            "missing signature",
            vec![
                ("X-GitHub-Delivery", "d-no-sig"),
                ("X-GitHub-Event", "push"),
            ],
            &other,
            401,
        ),
        (
            "another branch",
            vec![
                ("X-Hub-Signature-256", dev_sig.as_str()),
                ("X-GitHub-Delivery", "d-dev"),
                ("X-GitHub-Event", "push"),
            ],
            &dev,
            422,
        ),
        ("replayed delivery", valid.to_vec(), &body, 409),
        (
            "10 MB body",
            vec![
                ("X-Hub-Signature-256", huge_sig.as_str()),
                ("X-GitHub-Delivery", "d-huge"),
                ("X-GitHub-Event", "push"),
            ],
            &huge,
            413,
        ),
    ];
    for (what, headers, body, expected) in cases {
        let (status, answer) = post_hook(s.port, &headers, body);
        assert_eq!(status, expected, "{what}: {answer}");
        assert_eq!(s.deploys().len(), rows, "{what}: no deploy recorded");
        assert_eq!(s.files(), files, "{what}: nothing ran");
    }
    // The same body with its right signature and a fresh delivery id would deploy: the refusals
    // above were for their reason, not for the body.
    let (status, answer) = post_hook(
        s.port,
        &[
            ("X-Hub-Signature-256", other_sig.as_str()),
            ("X-GitHub-Delivery", "d-fresh"),
            ("X-GitHub-Event", "push"),
        ],
        &other,
    );
    assert_eq!(status, 202, "{answer}");
    let id2 = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["deploy"]
        .as_i64()
        .unwrap();
    let done = wait_for(
        "the second deploy to finish",
        Duration::from_secs(60),
        || deploy_json(s.port, id2).filter(|d| d["state"] != "running"),
    );
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(s.deployed(&addresses[0]).as_deref(), Some(COMMIT));

    assert!(tend.stop().success());
    let log = std::fs::read_to_string(s.dir.path().join("tend.log")).unwrap();
    assert!(
        log.contains("Deploy webhook refused"),
        "the refusals are logged:\n{log}"
    );
    assert!(!log.contains(SECRET), "the log leaks the secret:\n{log}");
}

/// The subject (unfolded) and the decoded text body of a raw mail.
pub(crate) fn decode_mail(raw: &str) -> (String, String) {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let body = match header("Content-Transfer-Encoding")
        .to_ascii_lowercase()
        .as_str()
    {
        "quoted-printable" => quoted_printable(body),
        "base64" => String::from_utf8_lossy(&base64(body)).into_owned(),
        _ => body.to_owned(),
    };
    (header("Subject"), body)
}

fn quoted_printable(s: &str) -> String {
    let s = s.replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(s: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let (mut acc, mut bits, mut out) = (0u32, 0, Vec::new());
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
