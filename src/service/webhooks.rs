//! Webhook delivery from the durable outbox: Standard Webhooks headers and signature, retries
//! with exponential backoff and jitter, final failures in the audit log.

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};

use super::{authority::Principal, core::Core};
use crate::{
    config::webhook_key,
    error::{Error, Result},
    model::{DeliveryState, StoredWebhook, WebhookEndpoint, now},
    security::{random::random_bytes, targets},
};

/// A webhook endpoint as listed: from the config file or added at run time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookInfo {
    /// `None` for endpoints from the config file (change those there).
    pub id: Option<uuid::Uuid>,
    pub url: String,
    pub events: Vec<String>,
    /// Only right after adding, when authd generated it.
    pub secret: Option<String>,
}

/// How the outbox stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryCounts {
    pub pending: usize,
    pub delivered: usize,
    pub failed: usize,
    /// Newest deliveries that are not (yet) delivered: (id, url, event, attempts, state, last error).
    pub troubled: Vec<(String, String, String, u32, String, Option<String>)>,
    /// The newest deliveries, whatever their state, the same way.
    #[serde(default)]
    pub recent: Vec<(String, String, String, u32, String, Option<String>)>,
}

/// The webhook endpoints added at run time, beside those of the config file.
pub struct Webhooks {
    core: Arc<Core>,
}

impl Webhooks {
    pub(super) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Adds an endpoint; without a secret one is generated (and returned once).
    /// Needs `webhooks:write`.
    pub async fn add(
        &self,
        by: &Principal,
        url: &str,
        events: Vec<String>,
        secret: Option<String>,
    ) -> Result<WebhookInfo> {
        self.core.authority(by, "webhooks:write")?;
        let url = url.trim().to_owned();
        if url.len() > 2000 {
            return Err(Error::invalid("url", "invalid_url", "the endpoint URL is at most 2000 characters"));
        }
        if let Err(why) = targets::check_url(&url, self.core.cfg.webhook_delivery.allow_private_targets) {
            let code = match why {
                targets::TargetError::Invalid(_) => "invalid_url",
                targets::TargetError::Private => "forbidden_target",
            };
            return Err(Error::invalid("url", code, format!("the endpoint {why}")));
        }
        if events.is_empty() {
            return Err(Error::invalid("events", "required", "list at least one event type (or \"*\")"));
        }
        let generated = secret.is_none();
        let secret = secret.unwrap_or_else(|| format!("whsec_{}", B64.encode(random_bytes::<32>())));
        if webhook_key(&secret).is_none() {
            return Err(Error::invalid(
                "secret",
                "invalid_secret",
                "the secret is `whsec_` followed by base64 of 16+ bytes",
            ));
        }
        let w = StoredWebhook {
            id: uuid::Uuid::now_v7(),
            endpoint: WebhookEndpoint { url: url.clone(), events: events.clone() },
            secret: secret.clone(),
            created_at: now(),
        };
        let stored = w.clone();
        self.core
            .db(move |s| {
                s.write(|tx| {
                    tx.put_webhook(&stored)?;
                    let e = &stored.endpoint;
                    tx.audit(
                        "webhook.added",
                        None,
                        None,
                        serde_json::json!({"id": stored.id, "url": e.url, "events": e.events}),
                    )?;
                    Ok(())
                })
            })
            .await?;
        Ok(WebhookInfo { id: Some(w.id), url, events, secret: generated.then_some(secret) })
    }

    /// Needs `webhooks:read`.
    pub async fn list(&self, by: &Principal) -> Result<Vec<WebhookInfo>> {
        self.core.authority(by, "webhooks:read")?;
        let stored = self.core.db(|s| s.read(|tx| tx.stored_webhooks().map_err(Error::from))).await?;
        let from_config = self.core.cfg.webhooks.iter().map(|w| WebhookInfo {
            id: None,
            url: w.url.clone(),
            events: w.events.clone(),
            secret: None,
        });
        let added = stored.into_iter().map(|w| WebhookInfo {
            id: Some(w.id),
            url: w.endpoint.url,
            events: w.endpoint.events,
            secret: None,
        });
        Ok(from_config.chain(added).collect())
    }

    /// Removes an endpoint added at run time; its pending deliveries fail.
    /// Needs `webhooks:write`.
    pub async fn delete(&self, by: &Principal, id: uuid::Uuid) -> Result<()> {
        self.core.authority(by, "webhooks:write")?;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    if !tx.delete_webhook(id)? {
                        return Err(Error::NotFound("webhook"));
                    }
                    tx.audit("webhook.deleted", None, None, serde_json::json!({"id": id}))?;
                    Ok(())
                })
            })
            .await
    }

    /// Sends a delivery that failed for good again, from its first attempt. Needs
    /// `webhooks:write`.
    pub async fn retry(&self, by: &Principal, id: uuid::Uuid) -> Result<()> {
        self.core.authority(by, "webhooks:write")?;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let found = tx.deliveries()?.into_iter().find(|d| d.id == id);
                    let mut d = found
                        .filter(|d| d.channel == crate::model::Channel::Webhook)
                        .ok_or(Error::NotFound("delivery"))?;
                    if d.state != DeliveryState::Failed {
                        return Err(Error::invalid("id", "not_failed", "only a delivery that failed is sent again"));
                    }
                    d.state = DeliveryState::Pending;
                    d.attempts = 0;
                    d.next_attempt_ms = crate::model::now_millis();
                    d.last_error = None;
                    tx.put_delivery(&d)?;
                    tx.audit("webhook.retried", None, None, serde_json::json!({"id": id, "url": d.url}))?;
                    Ok(())
                })
            })
            .await
    }

    /// Needs `webhooks:read`.
    pub async fn status(&self, by: &Principal) -> Result<DeliveryCounts> {
        self.core.authority(by, "webhooks:read")?;
        let mut all = self.core.db(|s| s.read(|tx| tx.deliveries().map_err(Error::from))).await?;
        all.retain(|d| d.channel == crate::model::Channel::Webhook);
        let mut c = DeliveryCounts::default();
        for d in &all {
            match d.state {
                DeliveryState::Pending => c.pending += 1,
                DeliveryState::Delivered => c.delivered += 1,
                DeliveryState::Failed => c.failed += 1,
            }
        }
        all.sort_by_key(|d| std::cmp::Reverse(d.id));
        let row = |d: &crate::model::OutboxMessage| {
            let state = format!("{:?}", d.state).to_lowercase();
            (d.id.to_string(), d.url.clone(), d.event.clone(), d.attempts, state, d.last_error.clone())
        };
        c.recent = all.iter().take(20).map(row).collect();
        c.troubled = all.iter().filter(|d| d.state != DeliveryState::Delivered).take(20).map(row).collect();
        Ok(c)
    }
}
