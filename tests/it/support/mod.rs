//! Helpers that start real servers for the integration tests, and small shared utilities.
#![allow(dead_code)]

pub mod etcd;
pub mod fault_proxy;
pub mod local_fleet;
pub mod moto;
pub mod replicas;
pub mod smtp;
pub mod sshd;
pub mod target_server;

use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, read, released; the caller binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Polls `f` until it returns Some, or panics with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The Python venv with aiosmtpd and moto (made by scripts/test).
pub fn venv() -> std::path::PathBuf {
    std::env::var_os("TEND_TEST_VENV")
        .map(Into::into)
        .unwrap_or_else(|| "/var/cache/tend-test/venv".into())
}

/// The checkout under test. Read at run time (cargo sets it for the test process): a target directory shared by
/// two checkouts may hold a test binary compiled in the other one, whose compile-time path may be gone.
pub fn repo_root() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// The tend binary built for these tests.
pub fn tend_bin() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_tend").into()
}

/// `GET path` on 127.0.0.1:port over plain HTTP/1.1; the raw response (headers and body), or None.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// `tend ARGS` in `dir`, to its end (deadline 60 s), its output captured.
pub fn run_tend(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    use std::io::Read;
    let mut child = std::process::Command::new(tend_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("TEND_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tend");
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = wait_for(
        &format!("tend {args:?} to exit"),
        Duration::from_secs(60),
        || child.try_wait().ok().flatten(),
    );
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A running `tend` process; stopped with SIGINT (then SIGKILL) on drop.
pub struct Tend {
    /// The child process.
    pub child: std::process::Child,
}

impl Tend {
    /// Starts `tend ARGS` in `dir`, output to `dir/tend.log`.
    pub fn start(dir: &std::path::Path, args: &[&str]) -> Tend {
        Self::start_env(dir, args, &[])
    }

    /// [`Tend::start`] with extra environment variables.
    pub fn start_env(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Tend {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("tend.log"))
            .expect("log file");
        let child = std::process::Command::new(tend_bin())
            .args(args)
            .current_dir(dir)
            .env_remove("TEND_CONFIG")
            .envs(env.iter().copied())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tend");
        Tend { child }
    }

    /// SIGINT, then waits (10 s) for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        wait_for("tend to exit", Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Tend {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
