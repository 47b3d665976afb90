//! The `[deploy]` section: where to deploy, how to log in, what to run, and when to stop.
//!
//! Parsing and validation are pure (no network, no disk): `validate()` names the field in every error
//! so `tend check-config` can point at it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::target::Target;
use crate::balancer::BalancerConfig;
use crate::core::template::{self, Template};
use crate::core::{Invalid, Secret};

/// Placeholders allowed in `steps` and `rollback_steps` (values are shell-quoted when substituted).
pub const STEP_PLACEHOLDERS: &[&str] = &["host", "name", "commit", "branch"];
/// Placeholders allowed in `health_url`.
pub const HEALTH_PLACEHOLDERS: &[&str] = &["address", "host", "name"];

/// Default SSH connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time one step may take before it is killed and the host fails.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time one health request may take.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of extra health attempts after the first one fails.
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;
/// Default pause between two health attempts.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// Default largest webhook body accepted (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default branch the webhook deploys.
pub const DEFAULT_WEBHOOK_BRANCH: &str = "main";
/// Shortest webhook secret accepted: a short HMAC key can be guessed offline from one signed request.
pub const MIN_SECRET_LEN: usize = 16;

/// `[deploy]`: roll shell steps out to a set of hosts over SSH, batch by batch, with a health check
/// after each host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// `"fleet"` (the cloud provider's instances with the configured prefix, addressed by IP) or an
    /// explicit list such as `["web1.example.com", "10.0.0.5:2222", "[2001:db8::1]:22"]`.
    pub hosts: Hosts,
    /// SSH login user; default: whatever `~/.ssh/config` says, else the local user.
    #[serde(default)]
    pub user: Option<String>,
    /// Private key file to log in with (then only that key is offered); default: `~/.ssh/config` and the agent.
    #[serde(default)]
    pub identity: Option<PathBuf>,
    /// known_hosts file to check host keys against; default: the user's own (`~/.ssh/known_hosts`).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// An ssh_config file used instead of `~/.ssh/config` and `/etc/ssh/ssh_config` (`ssh -F`).
    #[serde(default)]
    pub ssh_config: Option<PathBuf>,
    /// `"strict"` (default): a host whose key is not in known_hosts is refused; `"accept-new"`: an
    /// unknown host's key is learnt on first contact, a changed key is still refused.
    #[serde(default)]
    pub host_key_checking: HostKeyChecking,
    /// Time allowed to open the SSH connection to one host.
    #[serde(default = "default_connect_timeout", with = "crate::core::duration")]
    pub connect_timeout: Duration,
    /// Shell commands run in order on each host; `{host}`, `{name}`, `{commit}`, `{branch}` are
    /// substituted shell-quoted (write them bare, not inside quotes).
    pub steps: Vec<String>,
    /// Time one step may run before it is stopped and the host fails.
    #[serde(default = "default_step_timeout", with = "crate::core::duration")]
    pub step_timeout: Duration,
    /// Hosts deployed at once: a count (`2`) or a share of the hosts (`"25%"`, rounded up).
    #[serde(default)]
    pub batch: Batch,
    /// URL checked after each host's steps (`{address}`, `{host}`, `{name}` substituted); a 2xx answer is healthy.
    #[serde(default)]
    pub health_url: Option<String>,
    /// Time one health request may take.
    #[serde(default = "default_health_timeout", with = "crate::core::duration")]
    pub health_timeout: Duration,
    /// Extra health attempts after the first fails (so `3` = up to 4 requests).
    #[serde(default = "default_health_retries")]
    pub health_retries: u32,
    /// Pause between two health attempts.
    #[serde(default = "default_health_interval", with = "crate::core::duration")]
    pub health_interval: Duration,
    /// Failed hosts tolerated before the rollout stops (default 0: the first failure stops it).
    #[serde(default)]
    pub max_failures: usize,
    /// Commands run on every host of the batch that failed the rollout (same placeholders as `steps`).
    #[serde(default)]
    pub rollback_steps: Vec<String>,
    /// Take each host out of a load balancer while it changes: `"scale"` reuses `[scale.balancer]`, or a
    /// `[deploy.balancer]` table of its own (`kind = "elb"` or `"command"`, as `[scale.balancer]`). A host is
    /// deregistered (and drained) before its first step and registered again only once its health check passes.
    #[serde(default)]
    pub balancer: Option<DeployBalancer>,
    /// Hosts kept in the balancer at every moment of a rollout [default: all hosts but one batch]; a batch waits
    /// rather than go below it. Needs `balancer`.
    #[serde(default)]
    pub min_in_service: Option<usize>,
    /// `[deploy.webhook]`: the signed CI trigger (`POST /hooks/deploy`); absent = no webhook.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// `[deploy.webhook]`: who may trigger a deploy over HTTP, and for which branch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// HMAC-SHA256 key shared with the CI (GitHub's webhook "secret"); write `"${DEPLOY_WEBHOOK_SECRET}"`.
    pub secret: Secret,
    /// The only branch whose pushes deploy.
    #[serde(default = "default_webhook_branch")]
    pub branch: String,
    /// Largest request body accepted, in bytes; larger ones get 413 before any parsing.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

/// `[deploy] balancer`: which balancer hosts leave while they change.
#[derive(Debug, Clone)]
pub enum DeployBalancer {
    /// `balancer = "scale"`: the `[scale.balancer]` table.
    Scale,
    /// A `[deploy.balancer]` table of its own.
    Own(BalancerConfig),
}

impl PartialEq for DeployBalancer {
    fn eq(&self, other: &Self) -> bool {
        // BalancerConfig has no PartialEq; its Debug form names every field.
        format!("{self:?}") == format!("{other:?}")
    }
}

/// Where the hosts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Hosts {
    /// The cloud provider's instances (by prefix), addressed by IP.
    Fleet,
    /// An explicit list.
    List(Vec<Target>),
}

/// Host-key checking policy (OpenSSH `StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    /// Unknown or changed host keys are refused.
    #[default]
    Strict,
    /// Unknown host keys are added to known_hosts; changed keys are refused.
    AcceptNew,
}

/// How many hosts one batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// A fixed number of hosts.
    Count(usize),
    /// A percentage of the hosts, rounded up, at least one host.
    Percent(u8),
}

impl Default for Batch {
    fn default() -> Self {
        Batch::Count(1)
    }
}

impl Batch {
    /// Hosts per batch for a rollout over `total` hosts (at least 1).
    pub fn size(self, total: usize) -> usize {
        let n = match self {
            Batch::Count(n) => n,
            Batch::Percent(p) => (total * usize::from(p)).div_ceil(100),
        };
        n.max(1)
    }
}

impl DeployConfig {
    /// Every problem of the section, without touching the network or the disk; each names its field.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |field: String, message: String| out.push(Invalid::new(field, message));
        if let Hosts::List(list) = &self.hosts {
            if list.is_empty() {
                bad(
                    "deploy.hosts".into(),
                    "the host list is empty (or write hosts = \"fleet\")".into(),
                );
            }
            for (i, host) in list.iter().enumerate() {
                if list[..i].iter().any(|h| h.host() == host.host()) {
                    bad(
                        format!("deploy.hosts[{i}]"),
                        format!("{} is listed twice", host.host()),
                    );
                }
            }
        }
        if let Some(user) = &self.user
            && (user.is_empty()
                || user.starts_with('-')
                || !user.chars().all(template::is_safe_char))
        {
            bad(
                "deploy.user".into(),
                format!("{user:?} is not a valid login name"),
            );
        }
        if self.steps.is_empty() {
            bad(
                "deploy.steps".into(),
                "no steps: give at least one shell command".into(),
            );
        }
        check_commands("deploy.steps", &self.steps, &mut bad);
        check_commands("deploy.rollback_steps", &self.rollback_steps, &mut bad);
        for (field, d) in [
            ("deploy.connect_timeout", self.connect_timeout),
            ("deploy.step_timeout", self.step_timeout),
            ("deploy.health_timeout", self.health_timeout),
        ] {
            if d.is_zero() {
                bad(field.into(), "must be longer than 0s".into());
            }
        }
        match self.batch {
            Batch::Count(0) => bad("deploy.batch".into(), "must be at least 1".into()),
            Batch::Percent(p) if p == 0 || p > 100 => bad(
                "deploy.batch".into(),
                format!("{p}% is not between 1% and 100%"),
            ),
            _ => {}
        }
        if let Some(url) = &self.health_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bad(
                    "deploy.health_url".into(),
                    format!("{url:?} must start with http:// or https://"),
                );
            } else if let Err(e) = Template::parse(url, HEALTH_PLACEHOLDERS, false) {
                bad("deploy.health_url".into(), e.to_string());
            }
        }
        if let Some(hook) = &self.webhook {
            out.extend(hook.validate());
        }
        match (&self.balancer, self.min_in_service) {
            (Some(DeployBalancer::Own(b)), _) => out.extend(b.validate("deploy.balancer")),
            (None, Some(_)) => out.push(Invalid::new(
                "deploy.min_in_service",
                "needs deploy.balancer: without a balancer no host is taken out of service",
            )),
            _ => {}
        }
        out
    }
}

impl WebhookConfig {
    /// Every problem of the webhook values (a message never contains the secret).
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.secret.expose().len() < MIN_SECRET_LEN {
            out.push(Invalid::new(
                "deploy.webhook.secret",
                format!("too short: use at least {MIN_SECRET_LEN} random characters"),
            ));
        }
        if self.branch.is_empty() || !self.branch.chars().all(template::is_safe_char) {
            out.push(Invalid::new(
                "deploy.webhook.branch",
                format!("{:?} is not a branch name", self.branch),
            ));
        }
        if self.max_body_bytes == 0 {
            out.push(Invalid::new(
                "deploy.webhook.max_body_bytes",
                "must be at least 1",
            ));
        }
        out
    }
}

fn check_commands(field: &str, commands: &[String], bad: &mut impl FnMut(String, String)) {
    for (i, command) in commands.iter().enumerate() {
        if command.trim().is_empty() {
            bad(format!("{field}[{i}]"), "empty command".into());
        } else if let Err(e) = Template::parse(command, STEP_PLACEHOLDERS, true) {
            bad(format!("{field}[{i}]"), e.to_string());
        }
    }
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn default_step_timeout() -> Duration {
    DEFAULT_STEP_TIMEOUT
}
fn default_health_timeout() -> Duration {
    DEFAULT_HEALTH_TIMEOUT
}
fn default_health_retries() -> u32 {
    DEFAULT_HEALTH_RETRIES
}
fn default_health_interval() -> Duration {
    DEFAULT_HEALTH_INTERVAL
}
fn default_webhook_branch() -> String {
    DEFAULT_WEBHOOK_BRANCH.to_owned()
}
fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

impl<'de> Deserialize<'de> for Hosts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            de::Error::custom("expected \"fleet\" or a list of hosts like [\"web1.example.com\", \"10.0.0.5:2222\"]")
        })?;
        match raw {
            Raw::Word(w) if w == "fleet" => Ok(Hosts::Fleet),
            Raw::Word(w) => Err(de::Error::custom(format!(
                "{w:?}: expected \"fleet\" or a list of hosts (write hosts = [{w:?}] for one host)"
            ))),
            Raw::List(list) => list
                .iter()
                .map(|s| Target::parse(s).map_err(de::Error::custom))
                .collect::<Result<_, _>>()
                .map(Hosts::List),
        }
    }
}

impl<'de> Deserialize<'de> for DeployBalancer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = DeployBalancer;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "\"scale\" or a [deploy.balancer] table with kind = \"elb\" or \"command\"",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DeployBalancer, E> {
                match v {
                    "scale" => Ok(DeployBalancer::Scale),
                    other => Err(E::custom(format!(
                        "{other:?}: write \"scale\" to reuse [scale.balancer], or a [deploy.balancer] table"
                    ))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<DeployBalancer, A::Error> {
                BalancerConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(DeployBalancer::Own)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(i64),
            Text(String),
        }
        let bad = |what: &str| {
            de::Error::custom(format!(
                "batch {what}: write a count (2) or a percentage (\"25%\")"
            ))
        };
        match Raw::deserialize(d).map_err(|_| bad("must be a number or a string"))? {
            Raw::Count(n) => usize::try_from(n)
                .map(Batch::Count)
                .map_err(|_| bad(&n.to_string())),
            Raw::Text(s) => match s.trim().strip_suffix('%') {
                Some(p) => p
                    .trim()
                    .parse::<u8>()
                    .map(Batch::Percent)
                    .map_err(|_| bad(&format!("{s:?}"))),
                None => s
                    .trim()
                    .parse::<usize>()
                    .map(Batch::Count)
                    .map_err(|_| bad(&format!("{s:?}"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        deploy: DeployConfig,
    }

    fn parse(toml_text: &str) -> Result<DeployConfig, String> {
        toml::from_str::<File>(toml_text)
            .map(|f| f.deploy)
            .map_err(|e| e.to_string())
    }

    fn base() -> String {
        "[deploy]\nhosts = [\"web1\", \"10.0.0.5:2222\"]\nsteps = [\"echo {commit}\"]\n".to_owned()
    }

    fn field_of(extra: &str) -> String {
        let c = parse(&format!("{}{extra}", base())).expect("parses");
        c.validate().first().expect("invalid").path.clone()
    }

    #[test]
    fn minimal_config_has_named_defaults() {
        let c = parse(&base()).unwrap();
        assert_eq!(c.validate(), vec![]);
        assert_eq!(c.host_key_checking, HostKeyChecking::Strict);
        assert_eq!(c.batch, Batch::Count(1));
        assert_eq!(c.max_failures, 0);
        assert_eq!(c.step_timeout, DEFAULT_STEP_TIMEOUT);
        assert_eq!(c.health_retries, DEFAULT_HEALTH_RETRIES);
        assert!(c.rollback_steps.is_empty() && c.webhook.is_none() && c.health_url.is_none());
        let Hosts::List(hosts) = &c.hosts else {
            panic!("list")
        };
        assert_eq!(hosts[1].address, "10.0.0.5");
        assert_eq!(hosts[1].port, Some(2222));
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"[deploy]
hosts = "fleet"
user = "deploy"
identity = "/keys/id_ed25519"
known_hosts = "/keys/known_hosts"
host_key_checking = "accept-new"
steps = ["cd /srv/app && git fetch && git checkout {commit}", "systemctl restart app"]
step_timeout = "2m"
batch = "25%"
health_url = "http://{address}:8080/health"
health_timeout = "3s"
health_retries = 5
health_interval = "1s"
max_failures = 1
rollback_steps = ["git checkout -"]
[deploy.webhook]
secret = "0123456789abcdef0123"
branch = "release"
max_body_bytes = 4096
"#,
        )
        .unwrap();
        assert_eq!(c.validate(), vec![]);
        assert_eq!(c.hosts, Hosts::Fleet);
        assert_eq!(c.host_key_checking, HostKeyChecking::AcceptNew);
        assert_eq!(c.batch, Batch::Percent(25));
        assert_eq!(c.step_timeout, Duration::from_secs(120));
        let hook = c.webhook.unwrap();
        assert_eq!(hook.branch, "release");
        assert_eq!(
            format!("{hook:?}").matches("0123456789abcdef").count(),
            0,
            "secret never printed"
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_parse_errors() {
        assert!(
            parse(&format!("{}bogus = 1\n", base()))
                .unwrap_err()
                .contains("bogus")
        );
        assert!(
            parse(&format!("{}batch = \"ten\"\n", base()))
                .unwrap_err()
                .contains("batch")
        );
        assert!(
            parse(&format!("{}batch = -1\n", base()))
                .unwrap_err()
                .contains("batch")
        );
        assert!(
            parse(&format!("{}host_key_checking = \"no\"\n", base()))
                .unwrap_err()
                .contains("no")
        );
        assert!(
            parse("[deploy]\nhosts = \"web1\"\nsteps = [\"x\"]\n")
                .unwrap_err()
                .contains("fleet")
        );
        assert!(parse("[deploy]\nhosts = [\"-oProxyCommand=x\"]\nsteps = [\"x\"]\n").is_err());
        assert!(parse("[deploy]\nhosts = [\"web1:99999\"]\nsteps = [\"x\"]\n").is_err());
        assert!(parse(&format!("{}step_timeout = \"soon\"\n", base())).is_err());
    }

    #[test]
    fn batch_forms_and_sizes() {
        assert_eq!(
            parse(&format!("{}batch = 3\n", base())).unwrap().batch,
            Batch::Count(3)
        );
        assert_eq!(
            parse(&format!("{}batch = \"3\"\n", base())).unwrap().batch,
            Batch::Count(3)
        );
        assert_eq!(
            parse(&format!("{}batch = \"50%\"\n", base()))
                .unwrap()
                .batch,
            Batch::Percent(50)
        );
        assert_eq!(Batch::Percent(25).size(10), 3);
        assert_eq!(Batch::Percent(1).size(3), 1);
        assert_eq!(Batch::Percent(100).size(7), 7);
        assert_eq!(Batch::Count(4).size(2), 4);
        assert_eq!(Batch::Percent(50).size(0), 1);
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(field_of("batch = 0\n"), "deploy.batch");
        assert_eq!(field_of("batch = \"0%\"\n"), "deploy.batch");
        assert_eq!(field_of("batch = \"101%\"\n"), "deploy.batch");
        assert_eq!(field_of("user = \"-oX\"\n"), "deploy.user");
        assert_eq!(field_of("step_timeout = \"0s\"\n"), "deploy.step_timeout");
        assert_eq!(field_of("health_url = \"ftp://x\"\n"), "deploy.health_url");
        assert_eq!(
            field_of("health_url = \"http://{commit}/\"\n"),
            "deploy.health_url"
        );
        assert_eq!(
            field_of("rollback_steps = [\"ok\", \"echo '{commit}'\"]\n"),
            "deploy.rollback_steps[1]"
        );
        assert_eq!(
            field_of("[deploy.webhook]\nsecret = \"short\"\n"),
            "deploy.webhook.secret"
        );
        assert_eq!(
            field_of("[deploy.webhook]\nsecret = \"0123456789abcdef\"\nbranch = \"a b\"\n"),
            "deploy.webhook.branch"
        );
        let c = parse("[deploy]\nhosts = [\"a\", \"b\", \"a\"]\nsteps = [\"x\"]\n").unwrap();
        assert_eq!(c.validate().remove(0).path, "deploy.hosts[2]");
        let c = parse("[deploy]\nhosts = []\nsteps = [\"x\"]\n").unwrap();
        assert_eq!(c.validate().remove(0).path, "deploy.hosts");
        let c = parse("[deploy]\nhosts = [\"a\"]\nsteps = []\n").unwrap();
        assert_eq!(c.validate().remove(0).path, "deploy.steps");
        let c = parse("[deploy]\nhosts = [\"a\"]\nsteps = [\"echo {comit}\"]\n").unwrap();
        let e = c.validate().remove(0);
        assert_eq!(e.path, "deploy.steps[0]");
        assert!(e.message.contains("{comit}"), "{e}");
    }

    #[test]
    fn short_secret_error_does_not_contain_it() {
        let c = parse(&format!(
            "{}[deploy.webhook]\nsecret = \"hunter2\"\n",
            base()
        ))
        .unwrap();
        let e = c.validate().remove(0);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn balancer_is_scale_or_a_table_of_its_own() {
        let c = parse(&format!(
            "{}balancer = \"scale\"\nmin_in_service = 2\n",
            base()
        ))
        .unwrap();
        assert_eq!(c.balancer, Some(DeployBalancer::Scale));
        assert_eq!(c.min_in_service, Some(2));
        assert_eq!(c.validate(), vec![]);
        let c = parse(&format!(
            "{}[deploy.balancer]\nkind = \"command\"\nregister = \"add {{address}}\"\nderegister = \"del {{address}}\"\n",
            base()
        ))
        .unwrap();
        assert!(matches!(
            c.balancer,
            Some(DeployBalancer::Own(BalancerConfig::Command(_)))
        ));
        assert_eq!(c.min_in_service, None);
        let e = parse(&format!("{}balancer = \"haproxy\"\n", base())).unwrap_err();
        assert!(e.contains("\"haproxy\"") && e.contains("scale"), "{e}");
        let e = parse(&format!(
            "{}[deploy.balancer]\nkind = \"command\"\nregister = \"x\"\nderegistr = \"y\"\n",
            base()
        ))
        .unwrap_err();
        assert!(e.contains("deregistr"), "{e}");
        let c = parse(&format!(
            "{}[deploy.balancer]\nkind = \"command\"\nregister = \"\"\nderegister = \"y\"\n",
            base()
        ))
        .unwrap();
        assert_eq!(c.validate().remove(0).path, "deploy.balancer.register");
    }

    #[test]
    fn min_in_service_needs_a_balancer() {
        assert_eq!(field_of("min_in_service = 1\n"), "deploy.min_in_service");
    }
}
