//! How notifiers fail: [`NotifierError`] when one cannot be built (at start), [`DeliveryError`] when one
//! delivery fails (retried with backoff). A leaf of `alert/`: `smtp.rs`, `webhook.rs` and `file.rs` return them
//! and `notifier.rs` dispatches to those, so the errors sit below all four.

use std::path::PathBuf;
use std::time::Duration;

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
