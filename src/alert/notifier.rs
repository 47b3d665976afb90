//! The delivery edge: a [`Notifier`] is one configured destination (SMTP, webhook, `.eml` files), a closed set
//! dispatched by `match`. Each delivers one planned [`Message`] or says why not; the worker retries.

use super::config::NotifierConfig;
use super::message::Message;
use super::{file, smtp, webhook};

pub use super::error::{DeliveryError, NotifierError};

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
