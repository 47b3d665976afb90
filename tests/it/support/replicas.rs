//! Several `tend run` replicas sharing a real 3-member etcd cluster, for the cluster tests: each replica is a
//! real process with its own folder, store and web port, started from a config the test writes. Helpers read
//! what a replica shows (`/api/cluster`), what it did (its SQLite store, its log) and send it signals.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::etcd::EtcdCluster;
use super::{Tend, free_port, http_get, wait_for};

/// One replica: a `tend run` process.
pub struct Replica {
    /// Its member name.
    pub name: String,
    /// Its folder (config, store, log).
    pub dir: PathBuf,
    /// Its web port on 127.0.0.1.
    pub port: u16,
    tend: Option<Tend>,
}

impl Replica {
    /// Writes `config` (with `{port}` and `{dir}` filled in) into `root/name/tend.toml` and starts `tend run`.
    pub fn start(root: &Path, name: &str, config: &str) -> Replica {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("replica folder");
        let port = free_port();
        let text = config
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.display().to_string())
            .replace("{name}", name);
        std::fs::write(dir.join("tend.toml"), text).expect("replica config");
        let mut replica = Replica {
            name: name.to_string(),
            dir,
            port,
            tend: None,
        };
        replica.launch();
        replica
    }

    /// Starts the process again with the same folder and config.
    pub fn launch(&mut self) {
        self.tend = Some(Tend::start_env(
            &self.dir,
            &["run", "--config", "tend.toml"],
            &[
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
            ],
        ));
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.tend.as_ref().map_or(0, |t| t.child.id())
    }

    fn signal(&self, sig: &str) {
        let _ = std::process::Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status();
    }

    /// SIGKILL, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut t) = self.tend.take() {
            let _ = t.child.kill();
            let _ = t.child.wait();
        }
    }

    /// SIGSTOP: frozen, as in a long pause.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// `GET /api/cluster`, parsed; None when it does not answer.
    pub fn cluster(&self) -> Option<serde_json::Value> {
        let raw = http_get(self.port, "/api/cluster")?;
        let body = raw.split("\r\n\r\n").nth(1)?;
        serde_json::from_str(body).ok()
    }

    /// The leader this replica sees.
    pub fn leader(&self) -> Option<String> {
        self.cluster()?["leader"].as_str().map(str::to_string)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tend.log")).unwrap_or_default()
    }

    /// The scaling decisions this replica recorded at or after `since`: (time, action, outcome).
    pub fn decisions_since(&self, since: SystemTime) -> Vec<(SystemTime, String, String)> {
        let path = self.dir.join("tend.db");
        let Ok(conn) = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return vec![];
        };
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let Ok(mut stmt) = conn
            .prepare("SELECT at, action, outcome FROM scale_decisions WHERE at >= ?1 ORDER BY at")
        else {
            return vec![];
        };
        stmt.query_map([since], |r| {
            let at: i64 = r.get(0)?;
            Ok((
                SystemTime::UNIX_EPOCH + Duration::from_millis(at.max(0) as u64),
                r.get(1)?,
                r.get(2)?,
            ))
        })
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
    }
}

/// Waits until every running replica in `replicas` sees `members` members and the same leader; returns it.
pub fn agreed_leader(replicas: &[&Replica], members: usize, deadline: Duration) -> String {
    wait_for("one leader that every replica sees", deadline, || {
        let views: Vec<serde_json::Value> = replicas.iter().filter_map(|r| r.cluster()).collect();
        if views.len() != replicas.len() {
            return None;
        }
        let leader = views[0]["leader"].as_str()?.to_string();
        let agree = views.iter().all(|v| {
            v["leader"].as_str() == Some(&leader)
                && v["members"].as_array().map(Vec::len) == Some(members)
                && v["etcd"] == "ok"
        });
        agree.then_some(leader)
    })
}

/// How long `f` took to become true, polling; panics after `deadline`.
pub fn time_until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    wait_for(what, deadline, || f().then_some(()));
    start.elapsed()
}

/// The sections every replica of a cluster test shares: `[store]` and `[web]` in its folder and port, `[alert]`
/// mailing the SMTP sink on `smtp` (`alert` holds extra `[alert]` lines), `[cluster]` on `etcd` with `lease` and
/// `prefix`. `{dir}`, `{port}` and `{name}` are filled per replica by [`Replica::start`].
pub fn replica_config(
    etcd: &EtcdCluster,
    smtp: u16,
    lease: Duration,
    prefix: &str,
    alert: &str,
) -> String {
    let endpoints: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
    format!(
        r#"[store]
path = "{{dir}}/tend.db"
[web]
listen = "127.0.0.1:{{port}}"
[alert]
group_wait = "0s"
{alert}
[[alert.notifier]]
kind = "smtp"
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "tend@example.com"
to = ["ops@example.com"]
[cluster]
etcd = [{endpoints}]
name = "{{name}}"
lease = "{lease}s"
prefix = "{prefix}"
"#,
        endpoints = endpoints.join(", "),
        lease = lease.as_secs(),
    )
}
