//! Planned work, end to end with the tend binary and a real SMTP server: a `[[maintenance]]` window holds the
//! down alert back and the outage still open when it ends is mailed then; `tend silence` on a running daemon
//! holds alerts back at once, and clearing it releases them.

use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::support::smtp::SmtpSink;
use crate::support::target_server::{Mode, TargetServer};
use crate::support::{Tend, free_port, http_get, tend_bin, wait_for};

/// The first target of `/api/monitors`, and the whole answer.
pub fn monitor(port: u16) -> Option<(serde_json::Value, serde_json::Value)> {
    let body = http_get(port, "/api/monitors")?;
    let json: serde_json::Value = serde_json::from_str(body.split("\r\n\r\n").nth(1)?).ok()?;
    Some((json["targets"][0].clone(), json))
}

/// A config watching `url` as "shop", mailing the sink, with `extra` appended.
pub fn config(dir: &std::path::Path, port: u16, smtp: u16, url: &str, extra: &str) {
    std::fs::write(
        dir.join("tend.toml"),
        format!(
            "[web]\nlisten = \"127.0.0.1:{port}\"\n[alert]\ngroup_wait = \"200ms\"\n\
             [[alert.notifier]]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {smtp}\ntls = \"none\"\n\
             from = \"tend@example.com\"\nto = [\"ops@example.com\"]\n\
             [monitor]\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 2\n\
             [monitor.storm]\nwindow = \"500ms\"\n[[monitor.target]]\nname = \"shop\"\nurl = \"{url}\"\n{extra}"
        ),
    )
    .expect("write tend.toml");
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn tend(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(tend_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("TEND_CONFIG")
        .output()
        .expect("run tend");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The target answers again: the second mail is the up alert.
fn recovers(target: &TargetServer, sink: &SmtpSink) {
    target.set(Mode::Ok);
    let mails = sink.wait_for(2);
    assert!(
        mails
            .iter()
            .any(|m| m.contains("Subject: NOTICE: shop is up again")),
        "{mails:?}"
    );
}

fn is_held(port: u16) -> Option<serde_json::Value> {
    monitor(port)
        .map(|(t, _)| t)
        .filter(|t| t["state"] == "down" && t["alert_held"] == true && t["quiet"].is_object())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_holds_the_down_alert_and_an_outage_still_open_is_mailed_when_it_ends() {
    let target = TargetServer::start().await;
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // Whole seconds, as the config writes it.
    let end = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            (SystemTime::now() + Duration::from_secs(20))
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs(),
        );
    let window = format!(
        "[[maintenance]]\nname = \"db upgrade\"\ntargets = [\"sh*\"]\nstart = \"{}\"\nend = \"{}\"\n\
         reason = \"new disks\"\n",
        rfc3339(SystemTime::now() - Duration::from_secs(60)),
        rfc3339(end)
    );
    config(dir.path(), port, sink.port, &target.url("/"), &window);
    let mut tend = Tend::start(dir.path(), &["run"]);
    let (_, api) = wait_for("shop up", Duration::from_secs(20), || {
        monitor(port).filter(|(t, _)| t["state"] == "up")
    });
    assert_eq!(api["windows"][0]["name"], "db upgrade", "{api}");
    target.set(Mode::Status(503));
    let held = wait_for("the down alert held", Duration::from_secs(20), || {
        is_held(port)
    });
    assert!(
        held["quiet"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("db upgrade") && w.contains("new disks")),
        "{held}"
    );
    assert!(
        SystemTime::now() < end,
        "the outage began inside the window (the test machine was too slow)"
    );
    assert_eq!(sink.messages().len(), 0, "no mail inside the window");
    let mails = sink.wait_for(1);
    let mailed = SystemTime::now();
    assert!(mailed >= end, "mailed when the window ended, not before");
    assert!(
        mails[0].contains("Subject: ERROR: shop is down: HTTP 503"),
        "{}",
        mails[0]
    );
    wait_for("the hold released", Duration::from_secs(10), || {
        monitor(port).filter(|(t, _)| t["alert_held"] == false && t["quiet"].is_null())
    });
    recovers(&target, &sink);
    assert!(tend.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tend_silence_on_a_running_daemon_holds_alerts_until_it_is_cleared() {
    let target = TargetServer::start().await;
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    config(dir.path(), port, sink.port, &target.url("/"), "");
    let mut tend_run = Tend::start(dir.path(), &["run"]);
    wait_for("shop up", Duration::from_secs(20), || {
        monitor(port).filter(|(t, _)| t["state"] == "up")
    });
    let (ok, out) = tend(
        dir.path(),
        &["silence", "shop", "--for", "1h", "--reason", "db migration"],
    );
    assert!(ok && out.contains("Silenced shop until"), "{out}");
    let (ok, out) = tend(dir.path(), &["silence", "nope", "--for", "1h"]);
    assert!(
        !ok && out.contains("no monitor target matches \"nope\""),
        "{out}"
    );
    let (ok, out) = tend(dir.path(), &["silence", "--list"]);
    assert!(
        ok && out.contains("shop") && out.contains("db migration"),
        "{out}"
    );
    // The daemon shows it at once, before anything fails.
    wait_for("the silence on the page", Duration::from_secs(10), || {
        monitor(port).filter(|(t, api)| {
            t["quiet"]["why"]
                .as_str()
                .is_some_and(|w| w.contains("db migration"))
                && api["silences"][0]["target"] == "shop"
        })
    });
    target.set(Mode::Status(503));
    wait_for("the down alert held", Duration::from_secs(20), || {
        is_held(port)
    });
    assert_eq!(sink.messages().len(), 0, "no mail while silenced");
    let (ok, out) = tend(dir.path(), &["silence", "--clear", "shop"]);
    assert!(ok && out.contains("Cleared 1 silence(s) of shop"), "{out}");
    let mails = sink.wait_for(1);
    assert!(
        mails[0].contains("Subject: ERROR: shop is down: HTTP 503"),
        "{}",
        mails[0]
    );
    recovers(&target, &sink);
    assert!(tend_run.stop().success());
}
