//! `[alert]`: grouping of alerts and the notifiers that deliver them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::core::{Invalid, Secret};

/// `[alert]`: how alerts are grouped and who receives them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Alerts with the same key inside this window become one message plus a count ("and 37 more like this").
    #[serde(default = "default_dedup_window", with = "crate::core::duration")]
    pub dedup_window: Duration,
    /// How long a new alert waits for duplicates before it is sent (Alertmanager's group_wait).
    #[serde(default = "default_group_wait", with = "crate::core::duration")]
    pub group_wait: Duration,
    /// More distinct alerts than this within a minute collapse into one digest message.
    #[serde(default = "default_storm_limit")]
    pub storm_limit: usize,
    /// First retry delay after a failed delivery; doubles per attempt.
    #[serde(default = "default_retry_initial", with = "crate::core::duration")]
    pub retry_initial: Duration,
    /// Longest delay between two delivery attempts.
    #[serde(default = "default_retry_max", with = "crate::core::duration")]
    pub retry_max: Duration,
    /// Where alerts go; every notifier gets every message.
    #[serde(default)]
    pub notifier: Vec<NotifierConfig>,
}

fn default_dedup_window() -> Duration {
    Duration::from_secs(600)
}
fn default_group_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_storm_limit() -> usize {
    10
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(2)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            dedup_window: default_dedup_window(),
            group_wait: default_group_wait(),
            storm_limit: default_storm_limit(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            notifier: Vec::new(),
        }
    }
}

/// One notifier: `kind` picks which.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum NotifierConfig {
    /// Mail through an SMTP server.
    Smtp(SmtpConfig),
    /// POST JSON to a URL (Slack-compatible or the whole alert).
    Webhook(WebhookConfig),
    /// One `.eml` file per message into a folder.
    File(FileConfig),
}

/// TLS on the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (only for a relay on this machine).
    None,
    /// Upgrade with STARTTLS (port 587); refused if the server does not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `kind = "smtp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Name in logs and delivery records; default "smtp" (or "smtp-2", ... for several).
    pub name: Option<String>,
    /// Server host name (also checked against its certificate).
    pub host: String,
    /// Port; default 25, 587 or 465 after `tls`.
    pub port: Option<u16>,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    /// Login user; with `password`.
    pub username: Option<String>,
    /// Login password, usually `${SMTP_PASSWORD}`.
    pub password: Option<Secret>,
    /// Sender address.
    pub from: String,
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// Extra CA certificate (PEM) to trust, for a private CA.
    pub ca_file: Option<PathBuf>,
    /// Bound on one delivery (connect, TLS, login, send).
    #[serde(default = "default_timeout", with = "crate::core::duration")]
    pub timeout: Duration,
}

fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The body shape a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"text": "..."}`, accepted by Slack, Mattermost, Rocket.Chat and most chat tools.
    Slack,
    /// The whole message: severity, subject, body, keys, count, time.
    Json,
}

/// `kind = "webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name in logs and delivery records; default "webhook".
    pub name: Option<String>,
    /// Where to POST; may carry a token, so it is a secret (`${SLACK_WEBHOOK_URL}`).
    pub url: Secret,
    /// `slack` (default) or `json`.
    #[serde(default = "default_format")]
    pub format: WebhookFormat,
    /// Extra headers, e.g. `Authorization = "Bearer ${TOKEN}"`.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Bound on one POST.
    #[serde(default = "default_webhook_timeout", with = "crate::core::duration")]
    pub timeout: Duration,
}

fn default_format() -> WebhookFormat {
    WebhookFormat::Slack
}
fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `kind = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Name in logs and delivery records; default "file".
    pub name: Option<String>,
    /// Folder for the `.eml` files; created if missing.
    pub path: PathBuf,
    /// Sender written in the files.
    #[serde(default = "default_file_from")]
    pub from: String,
    /// Recipients written in the files.
    #[serde(default = "default_file_to")]
    pub to: Vec<String>,
}

fn default_file_from() -> String {
    "tend@localhost".into()
}
fn default_file_to() -> Vec<String> {
    vec!["ops@localhost".into()]
}

impl NotifierConfig {
    /// The kind's word, as in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifierConfig::Smtp(_) => "smtp",
            NotifierConfig::Webhook(_) => "webhook",
            NotifierConfig::File(_) => "file",
        }
    }

    fn explicit_name(&self) -> Option<&str> {
        match self {
            NotifierConfig::Smtp(c) => c.name.as_deref(),
            NotifierConfig::Webhook(c) => c.name.as_deref(),
            NotifierConfig::File(c) => c.name.as_deref(),
        }
    }
}

impl AlertConfig {
    /// Each notifier's name: its `name`, or its kind numbered when a kind appears more than once.
    pub fn notifier_names(&self) -> Vec<String> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        self.notifier
            .iter()
            .map(|n| match n.explicit_name() {
                Some(name) => name.to_string(),
                None => {
                    let k = seen.entry(n.kind()).or_insert(0);
                    *k += 1;
                    if *k == 1 {
                        n.kind().to_string()
                    } else {
                        format!("{}-{}", n.kind(), k)
                    }
                }
            })
            .collect()
    }

    /// Pure checks.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.dedup_window.is_zero() {
            out.push(Invalid::new("alert.dedup_window", "must be longer than 0s"));
        }
        if self.group_wait > self.dedup_window {
            out.push(Invalid::new(
                "alert.group_wait",
                "must not be longer than dedup_window (no alert may wait longer than the window)",
            ));
        }
        if self.storm_limit == 0 {
            out.push(Invalid::new("alert.storm_limit", "must be at least 1"));
        }
        if self.retry_initial.is_zero() || self.retry_initial > self.retry_max {
            out.push(Invalid::new(
                "alert.retry_initial",
                "must be longer than 0s and not longer than retry_max",
            ));
        }
        let names = self.notifier_names();
        for (i, (n, name)) in self.notifier.iter().zip(&names).enumerate() {
            let at = |field: &str| format!("alert.notifier[{i}].{field}");
            if names.iter().filter(|x| *x == name).count() > 1 {
                out.push(Invalid::new(
                    at("name"),
                    format!("the name {name:?} is used twice"),
                ));
            }
            match n {
                NotifierConfig::Smtp(c) => {
                    if c.host.trim().is_empty() {
                        out.push(Invalid::new(at("host"), "must not be empty"));
                    }
                    if c.to.is_empty() {
                        out.push(Invalid::new(at("to"), "needs at least one recipient"));
                    }
                    for (j, addr) in c.to.iter().enumerate() {
                        if addr.parse::<lettre::Address>().is_err() {
                            out.push(Invalid::new(
                                format!("alert.notifier[{i}].to[{j}]"),
                                format!("{addr:?} is not an email address"),
                            ));
                        }
                    }
                    if c.from.parse::<lettre::message::Mailbox>().is_err() {
                        out.push(Invalid::new(
                            at("from"),
                            format!("{:?} is not an email address", c.from),
                        ));
                    }
                    if c.username.is_some() != c.password.is_some() {
                        out.push(Invalid::new(
                            at("username"),
                            "username and password go together",
                        ));
                    }
                    if c.tls == SmtpTls::None && c.password.is_some() && !is_local(&c.host) {
                        out.push(Invalid::new(
                            at("tls"),
                            "a password over a plain-text connection to another machine: use starttls or tls",
                        ));
                    }
                }
                NotifierConfig::Webhook(c) => {
                    let url = c.url.expose();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        out.push(Invalid::new(
                            at("url"),
                            "must start with http:// or https://",
                        ));
                    }
                }
                NotifierConfig::File(c) => {
                    if c.path.as_os_str().is_empty() {
                        out.push(Invalid::new(at("path"), "must not be empty"));
                    }
                    if c.to.is_empty() {
                        out.push(Invalid::new(at("to"), "needs at least one recipient"));
                    }
                }
            }
        }
        out
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "::1"
}
