//! The webhook notifier: POST JSON, either Slack-compatible `{"text": ...}` or the whole message. Any answer
//! but 2xx is an error and is retried.

use std::time::Duration;

use super::config::{WebhookConfig, WebhookFormat};
use super::error::{DeliveryError, NotifierError};
use super::message::Message;
use crate::core::Secret;

/// POSTs messages to one URL.
pub struct WebhookNotifier {
    client: reqwest::Client,
    url: Secret,
    format: WebhookFormat,
    headers: Vec<(String, Secret)>,
    timeout: Duration,
}

impl WebhookNotifier {
    /// Builds the client.
    pub fn new(c: &WebhookConfig) -> Result<WebhookNotifier, NotifierError> {
        let client = reqwest::Client::builder()
            .timeout(c.timeout)
            .user_agent(concat!("tend/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(NotifierError::HttpClient)?;
        Ok(WebhookNotifier {
            client,
            url: c.url.clone(),
            format: c.format,
            headers: c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: c.timeout,
        })
    }

    /// The JSON body for a message in this notifier's format.
    pub fn body(&self, message: &Message) -> serde_json::Value {
        match self.format {
            WebhookFormat::Slack => serde_json::json!({
                "text": format!("*{}*\n{}", message.full_subject(), message.body),
            }),
            WebhookFormat::Json => serde_json::json!({
                "id": message.id,
                "severity": message.severity.as_str(),
                "subject": message.full_subject(),
                "body": message.body,
                "keys": message.keys,
                "created_at": crate::core::time::rfc3339_millis(message.created_at),
            }),
        }
    }

    /// POSTs one message. Errors never include the URL (it may hold a token).
    pub async fn deliver(&self, message: &Message) -> Result<(), DeliveryError> {
        let mut request = self
            .client
            .post(self.url.expose())
            .json(&self.body(message));
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.expose());
        }
        let send = async {
            let response = request.send().await.map_err(|e| {
                let e = e.without_url();
                if e.is_timeout() {
                    DeliveryError::Timeout(self.timeout)
                } else {
                    DeliveryError::Request(e)
                }
            })?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(DeliveryError::Status(status.as_u16()))
            }
        };
        tokio::time::timeout(self.timeout + Duration::from_secs(1), send)
            .await
            .unwrap_or(Err(DeliveryError::Timeout(self.timeout)))
    }
}
