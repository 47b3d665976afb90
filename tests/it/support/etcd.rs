//! A real etcd cluster (Debian's `etcd-server`) of n members on loopback, for one test; killed on drop.
//! Members can be SIGKILLed and restarted from their data directories to test outages.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get};

/// How long a member may take to report healthy.
const READY: Duration = Duration::from_secs(30);

/// One etcd member's fixed identity (ports and data directory survive restarts).
struct Node {
    name: String,
    client_port: u16,
    peer_port: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// n etcd processes forming one cluster.
pub struct EtcdCluster {
    nodes: Vec<Node>,
    initial: String,
    _dir: tempfile::TempDir,
    /// One etcd cluster at a time in this test binary: the cluster tests time leases and failovers in seconds, and
    /// two of them (three etcd members and three tend replicas each) beside the rest of the suite starve two cores.
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// Held by the running etcd cluster (see `EtcdCluster::_turn`).
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl EtcdCluster {
    /// Starts n members (`m1`..`mN`) and waits until every one reports healthy. A missing `etcd` binary
    /// fails the test, with how to install it.
    pub fn start(n: usize) -> EtcdCluster {
        let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let bin = etcd_bin();
        assert!(
            bin.exists(),
            "etcd not found at {}: install it with `apt-get install etcd-server etcd-client` (scripts/test does), \
             or set TEND_ETCD=/path/to/etcd",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let nodes: Vec<Node> = (1..=n)
            .map(|i| Node {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data: dir.path().join(format!("m{i}.etcd")),
                log: dir.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let initial = nodes
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            nodes,
            initial,
            _dir: dir,
            _turn: turn,
        };
        for i in 0..n {
            cluster.spawn(i, "new");
        }
        for i in 0..n {
            cluster.wait_healthy(i);
        }
        cluster
    }

    /// The client URLs of every member (`http://127.0.0.1:PORT`), running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// SIGKILLs member i (0-based) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member i again from its data directory and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i, "existing");
        self.wait_healthy(i);
    }

    /// SIGKILLs every member.
    pub fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }

    /// Starts every member again from its data directory; waits until all are healthy (they need each
    /// other for a quorum, so all are started before any is waited for).
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
            self.spawn(i, "existing");
        }
        for i in 0..self.nodes.len() {
            self.wait_healthy(i);
        }
    }

    /// The index of the member that is the raft leader now, if one answers.
    pub fn leader(&self) -> Option<usize> {
        let out = Command::new(etcdctl_bin())
            .args([
                "--endpoints",
                &self.endpoints().join(","),
                "endpoint",
                "status",
                "-w",
                "json",
            ])
            .env("ETCDCTL_API", "3")
            .output()
            .ok()?;
        let statuses: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let statuses = statuses.as_array()?;
        let leader = statuses
            .iter()
            .find_map(|s| s["Status"]["leader"].as_u64())?;
        let endpoint = statuses
            .iter()
            .find(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader))?["Endpoint"]
            .as_str()?
            .to_string();
        self.endpoints().iter().position(|e| *e == endpoint)
    }

    /// Member i's log, for failure messages.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let initial = self.initial.clone();
        let m = &mut self.nodes[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("etcd log file");
        let child = Command::new(etcd_bin())
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                state,
            ])
            .args(["--initial-cluster-token", "tend-test"])
            // Faster raft elections than the defaults (100 ms / 1 s), so losing a member is brief.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", etcd_bin().display()));
        m.child = Some(child);
    }

    fn wait_healthy(&mut self, i: usize) {
        let end = Instant::now() + READY;
        loop {
            let port = self.nodes[i].client_port;
            if http_get(port, "/health").is_some_and(|r| r.contains("\"health\":\"true\"")) {
                return;
            }
            let exited = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "etcd {} exited ({status}):\n{}",
                    self.nodes[i].name,
                    self.log(i)
                );
            }
            if Instant::now() > end {
                panic!(
                    "etcd {} not healthy within {READY:?}:\n{}",
                    self.nodes[i].name,
                    self.log(i)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// `TEND_ETCD`, else `etcd` on the PATH, else Debian's `/usr/bin/etcd` (which then fails to exist, clearly).
fn etcd_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("TEND_ETCD") {
        return bin.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| "/usr/bin/etcd".into())
}

fn etcdctl_bin() -> PathBuf {
    etcd_bin().with_file_name("etcdctl")
}
