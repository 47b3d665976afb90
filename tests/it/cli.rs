//! The `tend` binary as a user drives it: config errors, the example configs, the daemon's start and stop,
//! and `tend notify`.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, http_get, repo_root, tend_bin, wait_for};

fn tend(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(tend_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("TEND_CONFIG")
        .output()
        .expect("run tend")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_reports_every_error_with_its_location_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[web]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n\n[log]\ncontext_lines = \"many\"\n\n\
         [[alert.notifier]]\nkind = \"smtp\"\nhost = \"smtp.example.com\"\npassword = \"${TEND_TEST_UNSET_VAR}\"\n\
         username = \"tend\"\nfrom = \"tend@example.com\"\nto = [\"ops@example.com\"]\n",
    )
    .unwrap();
    let out = tend(dir.path(), &["check-config", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("bad.toml:3:1: unknown field `lisen`")
            && lines[0].contains("did you mean `listen`"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("bad.toml:6:17: invalid type"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("bad.toml:11:12:") && lines[2].contains("TEND_TEST_UNSET_VAR"),
        "{stderr}"
    );
}

#[test]
fn invalid_values_and_missing_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("v.toml"), "[alert]\nstorm_limit = 0\n[[alert.notifier]]\nkind = \"smtp\"\nhost = \"h\"\nfrom = \"a@b.c\"\nto = []\n").unwrap();
    let out = tend(dir.path(), &["check-config", "--config", "v.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(
        t.contains("v.toml:2:15: `alert.storm_limit`: must be at least 1"),
        "{t}"
    );
    assert!(
        t.contains("`alert.notifier[0].to`: needs at least one recipient"),
        "{t}"
    );
    let out = tend(dir.path(), &["check-config", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("missing.toml:1:1: cannot read the config file"));
}

#[test]
fn the_example_configs_are_valid() {
    let root = repo_root();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Command::new(tend_bin())
                .args(["check-config", "--config"])
                .arg(&path)
                .env("SMTP_PASSWORD", "x")
                .env("DEPLOY_WEBHOOK_SECRET", "0123456789abcdef0123")
                .env(
                    "SLACK_WEBHOOK_URL",
                    "https://hooks.slack.com/services/T0/B0/X",
                )
                .output()
                .unwrap();
            assert!(out.status.success(), "{}: {}", path.display(), text(&out));
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected the local and the AWS examples");
}

#[test]
fn the_daemon_serves_and_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("tend.toml"),
        format!("[web]\nlisten = \"127.0.0.1:{port}\"\n[[alert.notifier]]\nkind = \"file\"\npath = \"outbox\"\n"),
    )
    .unwrap();
    let mut child = Command::new(tend_bin())
        .arg("run")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| http_get(port, path);
    let health = wait_for("/healthz", Duration::from_secs(20), || get("/healthz"));
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let metrics = get("/metrics").unwrap();
    assert!(
        metrics.contains("tend_build_info{version=") && metrics.contains("tend_uptime_seconds"),
        "{metrics}"
    );
    let page = get("/").unwrap();
    assert!(page.contains("<title>tend</title>"), "{page}");
    // A second tend on the same port is a clear error, exit 2.
    let second = tend(dir.path(), &["run"]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(
        text(&second).contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        text(&second)
    );
    // Ctrl-C: stops within 10 s, status 0.
    let start = Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_for("tend to exit", Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_corrupt_store_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.db"), vec![7u8; 4096]).unwrap();
    std::fs::write(
        dir.path().join("tend.toml"),
        "[store]\npath = \"junk.db\"\n[web]\nenabled = false\n",
    )
    .unwrap();
    let out = tend(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("cannot open the store junk.db"),
        "{}",
        text(&out)
    );
}

#[test]
fn notify_reports_each_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    std::fs::write(
        dir.path().join("tend.toml"),
        format!(
            "[[alert.notifier]]\nkind = \"file\"\npath = \"outbox\"\n\
             [[alert.notifier]]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {closed}\ntls = \"none\"\n\
             from = \"tend@example.com\"\nto = [\"ops@example.com\"]\ntimeout = \"2s\"\n"
        ),
    )
    .unwrap();
    let out = tend(
        dir.path(),
        &[
            "notify",
            "--subject",
            "Hello from the test",
            "--timeout",
            "10s",
        ],
    );
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the SMTP notifier cannot deliver: {t}"
    );
    assert!(t.contains("file") && t.contains("accepted"), "{t}");
    assert!(t.contains("smtp") && t.contains("FAILED"), "{t}");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(
        eml.contains("Subject: NOTICE: Hello from the test"),
        "{eml}"
    );
}

#[test]
fn completions_are_printed() {
    let out = tend(std::path::Path::new("."), &["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("check-config"));
}
