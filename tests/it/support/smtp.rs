//! A real SMTP server for tests: aiosmtpd (from the test venv) writing each message into a maildir that the
//! test reads. Optional STARTTLS with a test certificate and optional required login.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// A running SMTP sink; killed on drop.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The maildir and, with TLS, the certificate.
    pub dir: TempDir,
    /// PEM of the server certificate, when TLS is on.
    pub cert_pem: Option<PathBuf>,
    child: Child,
}

/// How the sink is set up.
#[derive(Default, Clone)]
pub struct Options {
    /// Require STARTTLS with a self-made certificate for `localhost`/127.0.0.1.
    pub tls: bool,
    /// Require this login.
    pub login: Option<(String, String)>,
    /// Listen on this port instead of a free one.
    pub port: Option<u16>,
    /// Wait this long before accepting each recipient (a slow server).
    pub delay: Option<Duration>,
}

impl SmtpSink {
    /// A plain sink accepting everything.
    pub fn start() -> SmtpSink {
        Self::start_with(Options::default())
    }

    /// A sink with options; panics (fails the test) when it cannot start.
    pub fn start_with(options: Options) -> SmtpSink {
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("mail");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let port = options.port.unwrap_or_else(super::free_port);
        let python = super::venv().join("bin/python");
        let script = super::repo_root().join("tests/it/support/smtp_sink.py");
        let mut cmd = Command::new(&python);
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--dir"])
            .arg(&maildir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut cert_pem = None;
        if options.tls {
            let (cert, key) = test_cert(dir.path());
            cmd.arg("--tlscert").arg(&cert).arg("--tlskey").arg(&key);
            cert_pem = Some(cert);
        }
        if let Some(delay) = options.delay {
            cmd.args(["--delay", &delay.as_secs_f64().to_string()]);
        }
        if let Some((user, password)) = &options.login {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start the SMTP sink with {} (run scripts/test, which makes the venv): {e}",
                python.display()
            )
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.kill();
            panic!("the SMTP sink did not start (said {line:?})");
        }
        SmtpSink {
            port,
            dir,
            cert_pem,
            child,
        }
    }

    /// Every message received so far, as raw text, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("mail/new");
        let mut files: Vec<_> = std::fs::read_dir(&new)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits until at least `n` messages arrived (deadline 20 s) and returns them.
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        super::wait_for(&format!("{n} mails"), Duration::from_secs(20), || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for localhost and 127.0.0.1 (PEM files in `dir`).
fn test_cert(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params");
    let cert = params.self_signed(&key).expect("cert");
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}
