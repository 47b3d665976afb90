//! SSH execution behind a narrow trait: the real one drives the system OpenSSH through the
//! `openssh` crate (so `~/.ssh/config`, the agent and known_hosts work as for a human), the fakes in
//! `rollout.rs`'s tests script success, failure and hangs.
//!
//! One `ssh` master process per host holds the connection; each command is a new channel opened by speaking
//! OpenSSH's multiplexing protocol on the master's control socket directly (the crate's native mux), so no
//! local `ssh` process is started per step.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use super::config::{DeployConfig, HostKeyChecking};
use super::target::Target;

/// Extra time over `ConnectTimeout` before tend gives up on the ssh process itself.
const CONNECT_GRACE: Duration = Duration::from_secs(5);
/// Time allowed to close a session.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An SSH failure, naming the host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The connection (or authentication, or host-key check) failed.
    #[error("ssh {host}: cannot connect: {source}")]
    Connect {
        /// The host.
        host: String,
        /// What ssh said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection did not open in time.
    #[error("ssh {host}: no connection after {after:?}")]
    ConnectTimeout {
        /// The host.
        host: String,
        /// How long tend waited.
        after: Duration,
    },
    /// A command could not be started or its status not read.
    #[error("ssh {host}: running {command:?}: {source}")]
    Run {
        /// The host.
        host: String,
        /// The command.
        command: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Opens sessions to hosts.
pub trait Connector: Send + Sync + 'static {
    /// The session type.
    type Session: RemoteSession;
    /// Connects (within the configured connect timeout) and authenticates.
    fn connect(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Self::Session, SshError>> + Send;
}

/// An open session to one host.
pub trait RemoteSession: Send + Sync + 'static {
    /// Runs `command` through the remote login shell, calling `line` for each line of stdout and
    /// stderr as it arrives; returns the exit code (`None` if killed by a signal). Dropping the future
    /// stops the local ssh process (that is how step timeouts work).
    fn run(
        &self,
        command: &str,
        line: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<Option<i32>, SshError>> + Send;
    /// Closes the session.
    fn close(self) -> impl Future<Output = ()> + Send;
    /// Whether it runs a POSIX `sh` remotely, so that several steps can go as one script (`deploy/script.rs`);
    /// false runs them one `run` each.
    fn runs_scripts(&self) -> bool {
        false
    }
    /// [`RemoteSession::run`] with the remote bound `bound` instead of the step timeout (for a script of steps,
    /// each bounded inside it).
    fn run_bounded(
        &self,
        command: &str,
        bound: Duration,
        line: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<Option<i32>, SshError>> + Send {
        let _ = bound;
        self.run(command, line)
    }
}

/// The system OpenSSH client (`ssh` on PATH), one multiplexed master connection per host.
#[derive(Debug, Clone)]
pub struct OpenSsh {
    builder: SessionBuilder,
    connect_timeout: Duration,
    step_timeout: Duration,
}

impl OpenSsh {
    /// Options from `[deploy]`: user, identity, known_hosts, ssh_config, host-key policy, timeout.
    pub fn from_config(config: &DeployConfig) -> Self {
        let mut b = SessionBuilder::default();
        b.known_hosts_check(match config.host_key_checking {
            HostKeyChecking::Strict => KnownHosts::Strict,
            HostKeyChecking::AcceptNew => KnownHosts::Add,
        });
        b.connect_timeout(config.connect_timeout);
        if let Some(user) = &config.user {
            b.user(user.clone());
        }
        if let Some(key) = &config.identity {
            b.keyfile(key);
        }
        if let Some(file) = &config.known_hosts {
            b.user_known_hosts_file(file);
        }
        if let Some(file) = &config.ssh_config {
            b.config_file(file);
        }
        if let Some(dir) = control_dir() {
            b.control_directory(dir);
        }
        OpenSsh {
            builder: b,
            connect_timeout: config.connect_timeout,
            step_timeout: config.step_timeout,
        }
    }
}

/// A short control-socket directory (unix socket paths are limited to ~100 bytes).
fn control_dir() -> Option<PathBuf> {
    let dir = std::env::temp_dir();
    (dir.as_os_str().len() < 40).then_some(dir)
}

impl Connector for OpenSsh {
    type Session = OpenSshSession;

    async fn connect(&self, target: &Target) -> Result<OpenSshSession, SshError> {
        let mut builder = self.builder.clone();
        if let Some(port) = target.port {
            builder.port(port);
        }
        let host = target.host();
        let after = self.connect_timeout + CONNECT_GRACE;
        match tokio::time::timeout(after, builder.connect_mux(&target.address)).await {
            Ok(Ok(session)) => Ok(OpenSshSession {
                session,
                host,
                step_timeout: self.step_timeout,
            }),
            Ok(Err(e)) => Err(SshError::Connect {
                host,
                source: Box::new(e),
            }),
            Err(_) => Err(SshError::ConnectTimeout { host, after }),
        }
    }
}

/// A live `openssh` session.
#[derive(Debug)]
pub struct OpenSshSession {
    session: Session,
    host: String,
    step_timeout: Duration,
}

impl RemoteSession for OpenSshSession {
    fn runs_scripts(&self) -> bool {
        true
    }

    async fn run(
        &self,
        command: &str,
        line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Option<i32>, SshError> {
        self.run_bounded(command, self.step_timeout, line).await
    }

    async fn run_bounded(
        &self,
        command: &str,
        bound: Duration,
        line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Option<i32>, SshError> {
        let err = |e: openssh::Error| SshError::Run {
            host: self.host.clone(),
            command: command.to_owned(),
            source: Box::new(e),
        };
        let remote = bounded_remotely(command, bound);
        let mut child = self
            .session
            .raw_command(&remote)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(err)?;
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        let readers = async {
            tokio::join!(pump(stdout, tx.clone()), pump(stderr, tx));
        };
        let consumer = async {
            while let Some(l) = rx.recv().await {
                line(&l);
            }
        };
        tokio::join!(readers, consumer);
        match child.wait().await {
            Ok(status) => Ok(status.code()),
            // The mux protocol reports these two as errors; they are a step's exit like any other.
            Err(openssh::Error::RemoteProcessTerminated) => Ok(None),
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Some(127))
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.session.close()).await;
    }
}

/// Sends each line of `stream` (lossy UTF-8, without the newline) to `tx` until EOF or an error.
async fn pump(stream: Option<impl AsyncRead + Unpin>, tx: mpsc::UnboundedSender<String>) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                if tx
                    .send(text.trim_end_matches(['\n', '\r']).to_owned())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// `command` under `sh`, killed on the host after `timeout` + 2 s where coreutils' `timeout` exists; as one
/// statement of a script (no `exec`).
pub fn bounded_step(command: &str, timeout: Duration) -> String {
    let secs = timeout.as_secs() + 2;
    let quoted = crate::core::template::shell_quote(command);
    format!(
        "if command -v timeout >/dev/null 2>&1; then timeout -k 5 {secs} sh -c {quoted}; else sh -c {quoted}; fi"
    )
}

/// The command as sent: under the remote `timeout` (coreutils), a little longer than the local step bound, so
/// a step that times out is also stopped on the host instead of running on after tend gave up on it. Hosts
/// without `timeout` run the command as it is.
pub fn bounded_remotely(command: &str, timeout: Duration) -> String {
    let secs = timeout.as_secs() + 2;
    let quoted = crate::core::template::shell_quote(command);
    format!(
        "if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 {secs} sh -c {quoted}; else exec sh -c {quoted}; fi"
    )
}
