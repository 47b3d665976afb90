//! The `command` balancer: shell commands with `{id}`, `{name}`, `{address}` and `{port}` substituted
//! (shell-quoted), each inside a timeout. A non-zero exit is an error that quotes the command's stderr.

use std::time::Duration;

use serde::Deserialize;

use super::edge::Balancer;
use crate::cloud::{CloudError, CloudFuture, Instance};
use crate::core::Invalid;
use crate::core::template::{Template, TemplateError, render_shell};

/// `kind = "command"`: e.g. HAProxy's runtime API through `socat`, or an nginx upstream file plus a reload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Run when an instance joins.
    pub register: String,
    /// Run before an instance is terminated.
    pub deregister: String,
    /// `{port}` when the instance has none of its own (the `local` provider gives each its own).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Each command is killed after this long (an error).
    #[serde(default = "default_timeout", with = "crate::core::duration")]
    pub timeout: Duration,
}

/// Placeholders allowed in `register` and `deregister`.
pub const PLACEHOLDERS: &[&str] = &["id", "name", "address", "port"];

fn default_port() -> u16 {
    80
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl CommandConfig {
    /// Pure checks.
    pub fn validate(&self, path: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        for (key, value) in [
            ("register", &self.register),
            ("deregister", &self.deregister),
        ] {
            if value.trim().is_empty() {
                out.push(Invalid::new(format!("{path}.{key}"), "must not be empty"));
            } else if let Err(e) = Template::parse(value, PLACEHOLDERS, true) {
                out.push(Invalid::new(format!("{path}.{key}"), e.to_string()));
            }
        }
        if self.timeout.is_zero() {
            out.push(Invalid::new(
                format!("{path}.timeout"),
                "must be longer than 0s",
            ));
        }
        out
    }
}

/// Runs the configured commands.
#[derive(Debug, Clone)]
pub struct CommandBalancer {
    config: CommandConfig,
}

impl CommandBalancer {
    /// A balancer running `config`'s commands.
    pub fn new(config: CommandConfig) -> CommandBalancer {
        CommandBalancer { config }
    }

    /// The command line for `template` and `instance`, values shell-quoted (pure).
    pub fn render(&self, template: &str, instance: &Instance) -> Result<String, TemplateError> {
        let port = instance.port.unwrap_or(self.config.port).to_string();
        render_shell(
            template,
            &[
                ("id", &instance.id),
                ("name", &instance.name),
                ("address", instance.address().unwrap_or("")),
                ("port", &port),
            ],
        )
    }

    async fn run(&self, op: &str, template: &str, instance: &Instance) -> Result<(), CloudError> {
        let line = self
            .render(template, instance)
            .map_err(|e| CloudError::permanent(op, e.to_string()))?;
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| CloudError::permanent(op, format!("cannot run {line:?}: {e}")))?;
        let out = tokio::time::timeout(self.config.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                CloudError::transient(
                    op,
                    format!(
                        "{line:?} did not finish within {}",
                        crate::core::duration::exact(self.config.timeout)
                    ),
                )
            })?
            .map_err(|e| CloudError::transient(op, format!("{line:?}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(CloudError::permanent(
                op,
                format!("{line:?} failed ({}): {}", out.status, stderr.trim()),
            ))
        }
    }
}

impl Balancer for CommandBalancer {
    fn register<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()> {
        Box::pin(self.run("command:register", &self.config.register, instance))
    }

    fn deregister<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()> {
        Box::pin(self.run("command:deregister", &self.config.deregister, instance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::State;

    fn instance() -> Instance {
        Instance {
            id: "i-1".into(),
            name: "web-x".into(),
            state: State::Running,
            launched_at: std::time::SystemTime::UNIX_EPOCH,
            private_address: Some("10.0.0.5".into()),
            public_address: None,
            port: None,
        }
    }

    fn balancer(register: &str, timeout: Duration) -> CommandBalancer {
        CommandBalancer::new(CommandConfig {
            register: register.into(),
            deregister: "true".into(),
            port: 8080,
            timeout,
        })
    }

    #[tokio::test]
    async fn substitutes_runs_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let b = balancer(
            &format!(
                "echo {{id}} {{name}} {{address}}:{{port}} > {}",
                out.display()
            ),
            Duration::from_secs(10),
        );
        b.register(&instance()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "i-1 web-x 10.0.0.5:8080\n"
        );
        let b = balancer("echo nope >&2; exit 3", Duration::from_secs(10));
        let e = b.register(&instance()).await.unwrap_err();
        assert!(!e.is_transient());
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_command_times_out() {
        let b = balancer("sleep 30", Duration::from_millis(200));
        let e = b.register(&instance()).await.unwrap_err();
        assert!(
            e.is_transient() && e.to_string().contains("did not finish"),
            "{e}"
        );
    }

    #[test]
    fn values_are_quoted() {
        let mut i = instance();
        i.name = "x'; rm -rf / #".into();
        assert_eq!(
            balancer("add {name}", Duration::from_secs(1))
                .render("add {name}", &i)
                .unwrap(),
            r"add 'x'\''; rm -rf / #'"
        );
    }
}
