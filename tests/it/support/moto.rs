//! moto, the AWS API emulator (EC2, CloudWatch, ELBv2), on a free port for one test; killed on drop.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, venv, wait_for};

/// A running `moto_server`.
pub struct Moto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` from the test venv and waits (30 s at most) until it
    /// answers. Panics, with its output, when it cannot start: a missing emulator fails the test.
    pub fn start() -> Moto {
        let bin = venv().join("bin/moto_server");
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("temp file for moto's log");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("moto log"))
            .stderr(log.reopen().expect("moto log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install it with `python3 -m venv VENV && VENV/bin/pip install 'moto[server]'` \
                     and set TEND_TEST_VENV=VENV",
                    bin.display()
                )
            });
        let mut moto = Moto { child, port, log };
        let deadline = Duration::from_secs(30);
        let end = std::time::Instant::now() + deadline;
        while request(port, "GET", "/moto-api/").is_none() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited ({status}):\n{}", moto.output());
            }
            if std::time::Instant::now() > end {
                panic!(
                    "moto_server did not answer within {deadline:?}:\n{}",
                    moto.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub fn reset(&self) {
        wait_for("moto reset", Duration::from_secs(10), || {
            request(self.port, "POST", "/moto-api/reset")
        });
    }

    /// What moto printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// An SDK config for moto (static test credentials, us-east-1), through `endpoint` (moto or a proxy).
    pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "static",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 request; the status code, or None when nothing answers.
fn request(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
