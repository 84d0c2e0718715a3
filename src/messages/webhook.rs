//! Webhooks over HTTP: a POST with the Standard Webhooks headers, to public addresses only unless
//! the operator allows private ones.

use std::{sync::OnceLock, time::Duration};

use crate::{
    config::WebhookDeliveryConfig,
    model::{AuditEvent, DeliveryState, OutboxMessage, StoredWebhook, WebhookEndpoint},
    security::targets,
};

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

    /// Posts a form (a back-channel logout token) to `url`, under the same rules as webhooks.
    pub async fn post_form(&self, url: &str, id: &str, form: &[(&str, &str)]) -> Result<(), String> {
        if targets::check_url(url, self.cfg.allow_private_targets).is_err() {
            return Err(NOT_DELIVERED.into());
        }
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let res =
            self.http()?.post(url).header("content-type", "application/x-www-form-urlencoded").body(body).send().await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                tracing::debug!(delivery = id, status = r.status().as_u16(), "logout token refused");
                Err(NOT_DELIVERED.into())
            }
            Err(e) => {
                tracing::debug!(delivery = id, error = %e, "logout token not delivered");
                Err(NOT_DELIVERED.into())
            }
        }
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

/// The deliveries an audit event sets off: one per endpoint (from the config file or added at run
/// time) that wants it. Webhook troubles are not themselves sent as webhooks.
pub fn deliveries_for(e: &AuditEvent, configured: &[WebhookEndpoint], stored: &[StoredWebhook]) -> Vec<OutboxMessage> {
    if e.event.starts_with("webhook.") {
        return Vec::new();
    }
    let from_config = configured.iter().map(|w| (None, w));
    let added = stored.iter().map(|s| (Some(s.id), &s.endpoint));
    let wanted: Vec<(Option<uuid::Uuid>, &WebhookEndpoint)> =
        from_config.chain(added).filter(|(_, w)| w.wants(&e.event)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let time = std::time::UNIX_EPOCH + Duration::from_millis(e.time_ms);
    let payload = serde_json::json!({
        "type": e.event,
        "timestamp": humantime::format_rfc3339_millis(time).to_string(),
        "data": e,
    })
    .to_string();
    wanted
        .into_iter()
        .map(|(endpoint_id, w)| OutboxMessage {
            id: uuid::Uuid::now_v7(),
            channel: crate::model::Channel::Webhook,
            url: w.url.clone(),
            endpoint_id,
            event: e.event.clone(),
            payload: payload.clone(),
            created_ms: e.time_ms,
            next_attempt_ms: e.time_ms,
            attempts: 0,
            state: DeliveryState::Pending,
            last_error: None,
        })
        .collect()
}
