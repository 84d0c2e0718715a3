//! Webhooks over HTTP: a POST with the Standard Webhooks headers, to public addresses only unless
//! the operator allows private ones.

use std::sync::OnceLock;

use crate::{config::WebhookDeliveryConfig, security::targets};

/// What a failed delivery reports, whatever the cause: refused, unreachable, forbidden, timed
/// out or answered with an error are told apart only in the server's own log, or the status
/// would map the network for whoever can add endpoints.
pub const NOT_DELIVERED: &str = "not delivered";

/// One signed delivery.
pub struct Signed<'a> {
    pub id: &'a str,
    pub timestamp: u64,
    pub signature: &'a str,
    pub payload: &'a str,
}

pub struct WebhookSender {
    cfg: WebhookDeliveryConfig,
    /// Made at the first delivery: a server with none due never loads TLS roots for it.
    http: OnceLock<reqwest::Client>,
}

impl WebhookSender {
    pub fn new(cfg: &WebhookDeliveryConfig) -> Self {
        Self { cfg: cfg.clone(), http: OnceLock::new() }
    }

    fn http(&self) -> Result<&reqwest::Client, String> {
        if let Some(http) = self.http.get() {
            return Ok(http);
        }
        let mut builder = reqwest::Client::builder();
        if !self.cfg.allow_private_targets {
            // Names are checked on the addresses actually connected to.
            builder = builder.dns_resolver(targets::PublicOnly);
        }
        let http = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.cfg.timeout.0)
            .connect_timeout(std::time::Duration::from_secs(5))
            .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(self.http.get_or_init(|| http))
    }

    /// Posts `d` to `url`. `Err` carries what the outbox records; the cause goes to the log.
    pub async fn post(&self, url: &str, d: Signed<'_>) -> Result<(), String> {
        if targets::check_url(url, self.cfg.allow_private_targets).is_err() {
            return Err(NOT_DELIVERED.into());
        }
        let res = self
            .http()?
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", d.id)
            .header("webhook-timestamp", d.timestamp.to_string())
            .header("webhook-signature", d.signature)
            .body(d.payload.to_owned())
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                tracing::debug!(delivery = d.id, status = r.status().as_u16(), "webhook refused");
                Err(NOT_DELIVERED.into())
            }
            Err(e) => {
                tracing::debug!(delivery = d.id, error = %e, "webhook not delivered");
                Err(NOT_DELIVERED.into())
            }
        }
    }
}
