//! The monitor end to end: the tend binary watching a local target whose behaviour the test switches, mailing
//! a real SMTP server, restarted in the middle of an outage, and its status page read by headless Chromium.

use std::time::Duration;

use crate::support::smtp::SmtpSink;
use crate::support::target_server::{Mode, TargetServer};
use crate::support::{Tend, free_port, http_get, wait_for};

fn state_of(port: u16) -> Option<(String, usize)> {
    let body = http_get(port, "/api/monitors")?;
    let json: serde_json::Value = serde_json::from_str(body.split("\r\n\r\n").nth(1)?).ok()?;
    let t = &json["targets"][0];
    Some((
        t["state"].as_str()?.to_string(),
        t["recent_ms"].as_array()?.len(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_down_mail_and_one_up_mail_across_an_outage_and_a_restart() {
    let target = TargetServer::start().await;
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("tend.toml"),
        format!(
            "[web]\nlisten = \"127.0.0.1:{port}\"\n[alert]\ngroup_wait = \"200ms\"\n\
             [[alert.notifier]]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             from = \"tend@example.com\"\nto = [\"ops@example.com\"]\n\
             [monitor]\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 2\n\
             [[monitor.target]]\nname = \"shop\"\nurl = \"{}\"\n",
            sink.port,
            target.url("/")
        ),
    )
    .unwrap();
    let mut tend = Tend::start(dir.path(), &["run"]);
    wait_for("shop up", Duration::from_secs(20), || {
        state_of(port).filter(|(s, _)| s == "up")
    });
    target.set(Mode::Status(503));
    let mails = sink.wait_for(1);
    assert!(
        mails[0].contains("Subject: ERROR: shop is down: HTTP 503"),
        "{}",
        mails[0]
    );
    assert!(tend.stop().success());

    // Restarted mid-outage: it remembers the outage and does not mail again.
    let mut tend = Tend::start(dir.path(), &["run"]);
    wait_for("checks after the restart", Duration::from_secs(20), || {
        state_of(port).filter(|(s, n)| s == "down" && *n >= 3)
    });
    assert_eq!(
        sink.messages().len(),
        1,
        "no second down mail after the restart"
    );

    // What a person sees: the page in a real browser.
    let dom = chromium_dom(port);
    assert!(dom.contains(">shop<"), "{dom}");
    assert!(dom.contains("class=\"down\">down<"), "{dom}");
    assert!(dom.contains("0 up") && dom.contains("1 down"), "{dom}");
    assert!(dom.contains("HTTP 503"), "{dom}");

    target.set(Mode::Ok);
    let mails = sink.wait_for(2);
    let up = mails
        .iter()
        .find(|m| m.contains("Subject: NOTICE: shop is up again after"))
        .expect("an up mail");
    assert!(up.contains("HTTP 503"), "{up}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(sink.messages().len(), 2, "exactly one down and one up mail");
    assert!(tend.stop().success());
}

/// The status page at `port` as headless Chromium renders it (its DOM after load).
pub fn chromium_dom(port: u16) -> String {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("chromium is not installed (scripts/test installs it)");
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
