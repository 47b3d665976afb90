//! What people look at, from the tend binary: the badges (parsed as SVG) and the status page's charts as
//! headless Chromium renders them: each target's 24 hours by phase and 30 days of uptime, and the fleet's size
//! and load with its scaling decisions and the deploys on one 24-hour axis.

use std::process::Command;
use std::time::Duration;

use crate::monitor_e2e::chromium_dom;
use crate::monitor_quiet::monitor;
use crate::support::local_fleet::Reap;
use crate::support::sshd::start_hosts;
use crate::support::target_server::{Mode, TargetServer};
use crate::support::{Tend, free_port, http_get, tend_bin, wait_for};

/// (status line, headers, body) of `GET path`.
fn get(port: u16, path: &str) -> Option<(String, String, String)> {
    let raw = http_get(port, path)?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_string();
    Some((status, head.to_lowercase(), body.to_string()))
}

/// The badge's title and the fill of its value rectangle, read as SVG.
fn badge(svg: &str) -> (String, String) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}: {svg}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let title = root
        .children()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .expect("a title")
        .to_string();
    let fill = root
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("x").is_some())
        .find_map(|n| n.attribute("fill"))
        .expect("the value rect")
        .to_string();
    let texts: Vec<&str> = root
        .descendants()
        .filter_map(|n| n.has_tag_name("text").then(|| n.text()).flatten())
        .collect();
    assert!(
        title.split(": ").all(|part| texts.contains(&part)),
        "{title} drawn in {texts:?}"
    );
    (title, fill)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_show_the_state_and_the_uptime_as_svg() {
    let target = TargetServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(
        dir.path().join("tend.toml"),
        format!(
            "[web]\nlisten = \"127.0.0.1:{port}\"\n[monitor]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
             failure_threshold = 1\n[[monitor.target]]\nname = \"shop\"\nurl = \"{}\"\n",
            target.url("/")
        ),
    )
    .expect("config");
    let mut tend = Tend::start(dir.path(), &["run"]);
    wait_for("shop up", Duration::from_secs(20), || {
        monitor(port).filter(|(t, _)| t["state"] == "up")
    });
    let (status, headers, body) = get(port, "/badge/shop.svg").expect("badge");
    assert!(status.contains("200"), "{status}");
    assert!(headers.contains("content-type: image/svg+xml"), "{headers}");
    assert!(headers.contains("cache-control: max-age=30"), "{headers}");
    assert_eq!(badge(&body), ("shop: up".into(), "#4c1".into()));
    let (_, _, body) = get(port, "/badge/shop/uptime-30d.svg").expect("uptime badge");
    assert_eq!(badge(&body), ("uptime 30d: 100.00%".into(), "#4c1".into()));
    let (status, _, _) = get(port, "/badge/nope.svg").expect("answer");
    assert!(status.contains("404"), "{status}");
    let (status, _, _) = get(port, "/badge/shop/nope.svg").expect("answer");
    assert!(status.contains("404"), "{status}");

    target.set(Mode::Status(503));
    let body = wait_for("a red badge", Duration::from_secs(20), || {
        get(port, "/badge/shop.svg")
            .map(|r| r.2)
            .filter(|b| b.contains("shop: down"))
    });
    assert_eq!(badge(&body), ("shop: down".into(), "#e05d44".into()));
    let (_, _, body) = get(port, "/badge/shop/uptime-30d.svg").expect("uptime badge");
    let (title, _) = badge(&body);
    let pct: f64 = title
        .trim_start_matches("uptime 30d: ")
        .trim_end_matches('%')
        .parse()
        .expect("a percentage");
    assert!(pct < 100.0 && pct > 0.0, "{title}");
    assert!(tend.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_charts_of_targets_fleet_and_deploys() {
    let target = TargetServer::start().await;
    let hosts = start_hosts(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tend.db");
    let _fleet = Reap(db.clone());
    let port = free_port();
    std::fs::write(
        dir.path().join("tend.toml"),
        format!(
            "[store]\npath = {db:?}\n[web]\nlisten = \"127.0.0.1:{port}\"\n\
             [monitor]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
             [[monitor.target]]\nname = \"shop\"\nurl = \"{url}\"\n\
             [cloud]\nprovider = \"local\"\nprefix = \"charts\"\n\
             [scale]\nmin = 1\nmax = 2\ninterval = \"2s\"\nwindow = \"2s\"\nboot_grace = \"1s\"\n\
             [deploy]\nhosts = {hosts:?}\nuser = \"root\"\nidentity = {key:?}\nknown_hosts = {kh:?}\n\
             ssh_config = {cfg:?}\nsteps = [\"true\"]\n",
            url = target.url("/"),
            hosts = hosts.addresses(),
            key = hosts.client_key,
            kh = hosts.known_hosts,
            cfg = hosts.ssh_config,
        ),
    )
    .expect("config");
    let deploy = Command::new(tend_bin())
        .args(["deploy", "--commit", "3f2c1ab"])
        .current_dir(dir.path())
        .env_remove("TEND_CONFIG")
        .output()
        .expect("tend deploy");
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    let mut tend = Tend::start(dir.path(), &["run"]);
    wait_for(
        "checks and a scaling decision on the page",
        Duration::from_secs(40),
        || {
            let (_, _, page) = get(port, "/")?;
            (page.contains("class=\"decision add\"") && page.contains("class=\"chart phases\""))
                .then_some(())
        },
    );
    let dom = chromium_dom(port);
    // The DOM is HTML; each inline <svg> in it is well-formed XML on its own.
    let svgs: Vec<&str> = dom
        .match_indices("<svg")
        .map(|(i, _)| {
            let end = dom[i..].find("</svg>").map_or(dom.len(), |e| i + e + 6);
            &dom[i..end]
        })
        .collect();
    let find = |class: &str| {
        svgs.iter()
            .find(|s| s.starts_with(&format!("<svg class=\"{class}\"")))
            .unwrap_or_else(|| panic!("no <svg class={class:?}> in the page: {dom}"))
    };
    let phases = roxmltree::Document::parse(find("chart phases")).expect("phase chart is SVG");
    let layers: Vec<_> = phases
        .descendants()
        .filter(|n| n.has_tag_name("path"))
        .collect();
    assert_eq!(layers.len(), 5, "one layer per phase");
    let ttfb = layers
        .iter()
        .find(|n| n.attribute("class") == Some("layer ttfb"))
        .expect("a ttfb layer");
    let values: Vec<f64> = ttfb
        .attribute("data-values")
        .expect("values")
        .split(' ')
        .map(|v| v.parse().expect("number"))
        .collect();
    assert_eq!(values.len(), 24);
    assert!(
        values[23] > 0.0 || values[22] > 0.0,
        "this hour's mean time to first byte (or the last hour's, just after the hour): {values:?}"
    );
    let uptime = roxmltree::Document::parse(find("chart uptime")).expect("uptime bar is SVG");
    let cells: Vec<_> = uptime
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .collect();
    assert_eq!(cells.len(), 30);
    assert_eq!(
        cells[29].attribute("data-value"),
        Some("1.00000"),
        "today: all up"
    );
    let timeline = roxmltree::Document::parse(find("timeline")).expect("timeline is SVG");
    let lane = |name: &str| {
        timeline
            .descendants()
            .find(|n| n.attribute("data-lane") == Some(name))
            .unwrap_or_else(|| panic!("a {name} lane"))
    };
    let fleet = lane("fleet");
    assert!(
        fleet
            .descendants()
            .any(|n| n.attribute("class") == Some("decision add")),
        "the first instance's creation is marked"
    );
    assert!(
        fleet
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .count()
            == 2,
        "size and load lines"
    );
    let deploys = lane("deploys");
    assert!(
        deploys
            .descendants()
            .any(|n| n.attribute("class") == Some("deploy")
                && n.attribute("data-state") == Some("succeeded")),
        "the deploy is on the same axis"
    );
    assert!(tend.stop().success());
}
