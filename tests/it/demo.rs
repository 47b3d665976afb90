//! The embedded demo cleans up after itself: Ctrl-C on `tend run` with no config stops its worker processes;
//! a configured `local` fleet is left running and re-adopted by the next run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::local_fleet::{Reap, alive, pids};
use crate::support::{free_port, repo_root, tend_bin, wait_for};

/// Starts `tend run` in `dir` with the status page on `port`; output to `dir/tend.log`. The workers are asked
/// for no work (`tend-data/demo/demand` = 0), so they do not take the CPU from tests running beside this one.
fn run(dir: &Path, port: u16) -> Child {
    std::fs::create_dir_all(dir.join("tend-data/demo")).expect("demo folder");
    std::fs::write(dir.join("tend-data/demo/demand"), "0").expect("demand");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tend.log"))
        .expect("log");
    Command::new(tend_bin())
        .arg("run")
        .current_dir(dir)
        .env_remove("TEND_CONFIG")
        .env("TEND_LISTEN", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start tend")
}

/// SIGINT, then the exit status (10 s).
fn interrupt(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    wait_for("tend to exit", Duration::from_secs(15), || {
        child.try_wait().ok().flatten()
    })
}

/// The worker pids the demo's store records.
fn workers(dir: &Path) -> Vec<i64> {
    pids(&dir.join("tend-data/tend.db"))
}

#[test]
fn ctrl_c_on_the_demo_stops_its_workers_but_a_configured_fleet_is_readopted() {
    // The demo: no tend.toml here.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tend = run(dir.path(), free_port());
    let _reap = Reap(dir.path().join("tend-data/tend.db"));
    let workers_seen = wait_for("a demo worker", Duration::from_secs(40), || {
        Some(workers(dir.path())).filter(|p| !p.is_empty() && p.iter().all(|p| alive(*p)))
    });
    assert!(interrupt(&mut tend).success());
    for pid in &workers_seen {
        wait_for("the demo worker to stop", Duration::from_secs(10), || {
            (!alive(*pid)).then_some(())
        });
    }
    let log = std::fs::read_to_string(dir.path().join("tend.log")).expect("log");
    assert!(log.contains("Stopped the demo's"), "{log}");

    // The same config from a file: a configured fleet outlives tend and is re-adopted.
    let dir = tempfile::tempdir().expect("tempdir");
    let _reap_configured = Reap(dir.path().join("tend-data/tend.db"));
    let demo = std::fs::read_to_string(repo_root().join("src/demo.toml")).expect("demo.toml");
    std::fs::write(dir.path().join("tend.toml"), demo).expect("tend.toml");
    let port = free_port();
    let mut tend = run(dir.path(), port);
    let configured = wait_for("a configured worker", Duration::from_secs(40), || {
        Some(workers(dir.path())).filter(|p| !p.is_empty() && p.iter().all(|p| alive(*p)))
    });
    assert!(interrupt(&mut tend).success());
    assert!(
        configured.iter().all(|p| alive(*p)),
        "a configured fleet keeps running"
    );
    let mut tend = run(dir.path(), port);
    wait_for("re-adoption", Duration::from_secs(30), || {
        std::fs::read_to_string(dir.path().join("tend.log"))
            .ok()
            .filter(|l| l.contains("Re-adopted local instances"))
    });
    assert_eq!(
        workers(dir.path()),
        configured,
        "the same processes, adopted"
    );
    assert!(interrupt(&mut tend).success());
    assert!(configured.iter().all(|p| alive(*p)));
}
