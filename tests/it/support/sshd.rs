//! A private OpenSSH server on a free 127.0.0.1 port, for deploy tests: its own host key, a client
//! key allowed to log in, a known_hosts file; killed on drop (also when the test panics).
//!
//! Runs `/usr/sbin/sshd -f CONFIG -D -e` as the current user (root on the test machines). When sshd
//! cannot start, the test fails: no test is skipped.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SSHD: &str = "/usr/sbin/sshd";
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// One running sshd.
pub struct Sshd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its public host key (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    /// Config, keys, pid file and log live here.
    pub dir: TempDir,
    child: Child,
}

/// Several sshd ("hosts") sharing one client key.
pub struct SshHosts {
    /// The servers.
    pub hosts: Vec<Sshd>,
    /// Holds the client key, known_hosts and an empty ssh_config.
    pub dir: TempDir,
    /// The private key the servers accept.
    pub client_key: PathBuf,
    /// known_hosts listing every server's host key.
    pub known_hosts: PathBuf,
    /// An empty ssh_config (`ssh -F`), so the user's own ~/.ssh/config cannot change the test.
    pub ssh_config: PathBuf,
}

impl SshHosts {
    /// `127.0.0.1:PORT` of each host.
    pub fn addresses(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| format!("127.0.0.1:{}", h.port))
            .collect()
    }

    /// The `[deploy]` lines that log in to these hosts as root: `hosts`, `user`, `identity`, `known_hosts`,
    /// `ssh_config`.
    pub fn deploy_login(&self) -> String {
        format!(
            "hosts = {:?}\nuser = \"root\"\nidentity = {:?}\nknown_hosts = {:?}\nssh_config = {:?}\n",
            self.addresses(),
            self.client_key,
            self.known_hosts,
            self.ssh_config,
        )
    }
}

impl Sshd {
    /// The known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key)
    }

    /// What sshd wrote to stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` sshd; a test whose servers cannot start fails (scripts/test installs openssh-server).
pub fn start_hosts(n: usize) -> SshHosts {
    match try_start_hosts(n) {
        Ok(hosts) => hosts,
        Err(e) => {
            panic!("cannot start sshd for this test (run scripts/test, which installs it): {e}")
        }
    }
}

/// Starts `n` sshd sharing one client key.
pub fn try_start_hosts(n: usize) -> Result<SshHosts, String> {
    ensure_sshd_installed()?;
    std::fs::create_dir_all("/run/sshd").map_err(|e| format!("mkdir /run/sshd: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let client_key = dir.path().join("client_key");
    keygen(&client_key)?;
    let public = read(&client_key.with_extension("pub"))?;
    let hosts = (0..n)
        .map(|_| start_one(&public))
        .collect::<Result<Vec<_>, _>>()?;
    let known_hosts = dir.path().join("known_hosts");
    let lines: String = hosts.iter().map(|h| h.known_hosts_line() + "\n").collect();
    std::fs::write(&known_hosts, lines).map_err(|e| e.to_string())?;
    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "").map_err(|e| e.to_string())?;
    Ok(SshHosts {
        hosts,
        dir,
        client_key,
        known_hosts,
        ssh_config,
    })
}

fn ensure_sshd_installed() -> Result<(), String> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if Path::new(SSHD).exists() {
        return Ok(());
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "openssh-server"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("{SSHD} is missing and apt-get cannot run: {e}"))?;
    if !status.success() || !Path::new(SSHD).exists() {
        return Err(format!(
            "{SSHD} is missing and `apt-get install -y openssh-server` failed ({status})"
        ));
    }
    Ok(())
}

fn keygen(path: &Path) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tend-test", "-f"])
        .arg(path)
        .output()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Starts one sshd accepting `authorized` (a public key line); retries on a port race.
fn start_one(authorized: &str) -> Result<Sshd, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let host_key_path = dir.path().join("host_key");
    keygen(&host_key_path)?;
    let host_key: String = read(&host_key_path.with_extension("pub"))?
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(dir.path().join("authorized_keys"), authorized).map_err(|e| e.to_string())?;
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let config = dir.path().join("sshd_config");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nMaxStartups 100:30:200\n\
                 LogLevel ERROR\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("sshd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(SSHD)
            .arg("-f")
            .arg(&config)
            .args(["-D", "-e"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{SSHD}: {e}"))?;
        let mut child = child;
        match wait_ready(&mut child, port, dir.path()) {
            Ok(()) => {
                return Ok(Sshd {
                    port,
                    host_key,
                    dir,
                    child,
                });
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                last_error = e;
            }
        }
    }
    Err(last_error)
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Waits until the server sends its SSH banner, or it exits, or the deadline passes.
fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_DEADLINE;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = || std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("sshd on port {port} exited ({status}): {}", log()));
        }
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 4];
            if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "sshd on port {port} not ready after {READY_DEADLINE:?}: {}",
                log()
            ));
        }
        // Polling a condition under a deadline, not sleeping to "wait enough".
        std::thread::sleep(Duration::from_millis(20));
    }
}
