//! The delivery edge: a [`Notifier`] is one configured destination (SMTP, webhook, `.eml` files), a closed set
//! dispatched by `match`. Each delivers one planned [`Message`] or says why not; the worker retries.

use std::path::PathBuf;
use std::time::Duration;

use super::Message;
use super::config::NotifierConfig;
use super::{file, smtp, webhook};

/// Why a notifier's settings could not be turned into a client (at start, so a bad notifier is an error then).
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The `ca_file` could not be read.
    #[error("cannot read ca_file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The `ca_file` is not a PEM certificate, or the TLS settings are refused.
    #[error("TLS settings: {0}")]
    Tls(#[source] lettre::transport::smtp::Error),
    /// A `from` or `to` address does not parse.
    #[error("{field} {value:?}: {source}")]
    Address {
        /// `from` or `to`.
        field: &'static str,
        /// The address as written.
        value: String,
        /// The parser's complaint.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// Why one delivery failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The mail could not be assembled.
    #[error("cannot build the mail: {0}")]
    Build(#[source] lettre::error::Error),
    /// The SMTP server refused or the connection failed.
    #[error("{}", crate::core::chain(.0))]
    Smtp(#[source] lettre::transport::smtp::Error),
    /// No answer in time.
    #[error("no answer within {}", crate::core::duration::exact(*.0))]
    Timeout(Duration),
    /// The HTTP request failed (the URL is never included: it may hold a token).
    #[error("request failed: {}", crate::core::chain(.0))]
    Request(#[source] reqwest::Error),
    /// The receiver answered something else than 2xx.
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    /// A file could not be written.
    #[error("cannot {action} {path}: {source}")]
    Write {
        /// What was done: create, write, rename to.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A configured notifier.
pub enum Notifier {
    /// SMTP.
    Smtp(smtp::SmtpNotifier),
    /// HTTP POST.
    Webhook(webhook::WebhookNotifier),
    /// `.eml` files.
    File(file::FileNotifier),
}

impl Notifier {
    /// Builds the client for a config entry.
    pub fn build(config: &NotifierConfig) -> Result<Notifier, NotifierError> {
        Ok(match config {
            NotifierConfig::Smtp(c) => Notifier::Smtp(smtp::SmtpNotifier::new(c)?),
            NotifierConfig::Webhook(c) => Notifier::Webhook(webhook::WebhookNotifier::new(c)?),
            NotifierConfig::File(c) => Notifier::File(file::FileNotifier::new(c)?),
        })
    }

    /// Delivers one message; an error is retried later.
    pub async fn deliver(&self, message: &Message) -> Result<(), DeliveryError> {
        match self {
            Notifier::Smtp(n) => n.deliver(message).await,
            Notifier::Webhook(n) => n.deliver(message).await,
            Notifier::File(n) => n.deliver(message).await,
        }
    }
}

/// Parses a list of mailboxes, naming the field of the first bad one.
pub(super) fn mailboxes(
    field: &'static str,
    values: &[String],
) -> Result<Vec<lettre::message::Mailbox>, NotifierError> {
    values.iter().map(|v| mailbox(field, v)).collect()
}

/// Parses one mailbox, naming its field.
pub(super) fn mailbox(
    field: &'static str,
    value: &str,
) -> Result<lettre::message::Mailbox, NotifierError> {
    value.parse().map_err(|source| NotifierError::Address {
        field,
        value: value.to_string(),
        source,
    })
}
