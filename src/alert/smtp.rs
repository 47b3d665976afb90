//! The SMTP notifier (lettre): STARTTLS or implicit TLS, login, several recipients, one plain-text mail per
//! message with a stable Message-ID (so a resend after a crash is recognisable as the same mail).

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::{SmtpConfig, SmtpTls};
use super::error::{DeliveryError, NotifierError};
use super::message::Message;

/// Sends messages through one SMTP server.
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl SmtpNotifier {
    /// Builds the transport (no connection yet).
    pub fn new(c: &SmtpConfig) -> Result<SmtpNotifier, NotifierError> {
        let port = c.port.unwrap_or(match c.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
            .port(port)
            .timeout(Some(c.timeout));
        if c.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(c.host.clone());
            if let Some(path) = &c.ca_file {
                let pem = std::fs::read(path).map_err(|source| NotifierError::CaFile {
                    path: path.clone(),
                    source,
                })?;
                let cert = Certificate::from_pem(&pem).map_err(NotifierError::Tls)?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(NotifierError::Tls)?;
            builder = builder.tls(match c.tls {
                SmtpTls::Starttls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let (Some(user), Some(password)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        let from = mailbox("from", &c.from)?;
        let to = mailboxes("to", &c.to)?;
        Ok(SmtpNotifier {
            transport: builder.build(),
            from,
            to,
            timeout: c.timeout,
        })
    }

    /// Sends one message; the whole exchange is bounded by the timeout.
    pub async fn deliver(&self, message: &Message) -> Result<(), DeliveryError> {
        let email = build_email(message, &self.from, &self.to)?;
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(DeliveryError::Smtp(e)),
            Err(_) => Err(DeliveryError::Timeout(self.timeout)),
        }
    }
}

/// The RFC 5322 mail for a message: Date, a stable Message-ID, the severity-prefixed subject, plain text.
pub fn build_email(
    message: &Message,
    from: &Mailbox,
    to: &[Mailbox],
) -> Result<lettre::Message, DeliveryError> {
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .subject(message.full_subject())
        .date(message.created_at)
        .message_id(Some(format!(
            "<tend.{}.{}@{}>",
            message.id,
            crate::core::time::millis(message.created_at),
            host_name()
        )))
        .header(ContentType::TEXT_PLAIN);
    for t in to {
        builder = builder.to(t.clone());
    }
    builder
        .body(message.body.clone())
        .map_err(DeliveryError::Build)
}

/// The host name as a Message-ID domain: this machine's name when it is a valid one.
fn host_name() -> &'static str {
    let h = crate::core::host::name();
    let valid = !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid { h } else { "tend.localhost" }
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
