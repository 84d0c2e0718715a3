//! Webhook delivery from the durable outbox: Standard Webhooks headers and signature, retries
//! with exponential backoff and jitter, final failures in the audit log.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};

use super::AuthService;
use crate::{
    config::webhook_key,
    error::{Error, Result},
    messages::Signed,
    model::{AuditEvent, DeliveryState, OutboxMessage, StoredWebhook, WebhookEndpoint, now, now_millis},
    security::{random::random_bytes, signature::sign, targets},
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
}

/// The deliveries an audit event sets off: one per endpoint (from the config file or added at run
/// time) that wants it. Webhook troubles are not themselves sent as webhooks.
pub(super) fn deliveries_for(
    e: &AuditEvent,
    configured: &[WebhookEndpoint],
    stored: &[StoredWebhook],
) -> Vec<OutboxMessage> {
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

fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.min(12)).min(Duration::from_secs(3600));
    // ±20 % jitter so that retries of many messages spread out.
    let jitter = f64::from(random_bytes::<1>()[0]) / 255.0 * 0.4 + 0.8;
    base.mul_f64(jitter)
}

impl AuthService {
    /// Sends every due delivery once; returns how many were delivered.
    pub async fn deliver_webhooks(&self) -> Result<usize> {
        let now = now_millis();
        let (due, stored) =
            self.core.db(move |s| s.read(|tx| Ok((tx.due_deliveries(now, 100)?, tx.stored_webhooks()?)))).await?;
        let mut delivered = 0;
        for d in due {
            if d.channel != crate::model::Channel::Webhook {
                delivered += usize::from(self.deliver_message(d).await?);
                continue;
            }
            let key = match d.endpoint_id {
                Some(id) => stored.iter().find(|s| s.id == id).and_then(|s| webhook_key(&s.secret)),
                None => self.core.cfg.webhooks.iter().find(|w| w.url == d.url).and_then(|w| w.key()),
            };
            let gone = key.is_none();
            let outcome = match key {
                None => Err("endpoint no longer configured".to_string()),
                Some(key) => {
                    let timestamp = now_millis() / 1000;
                    let id = d.id.to_string();
                    let signature = sign(&key, &id, timestamp, &d.payload);
                    let signed = Signed { id: &id, timestamp, signature: &signature, payload: &d.payload };
                    self.core.outbound.webhooks.post(&d.url, signed).await
                }
            };
            let retry_for = self.core.cfg.webhook_delivery.retry_for.0;
            let sent = self
                .settle_delivery(d, outcome, retry_for, gone, |d, e| {
                    (
                        "webhook.failed",
                        serde_json::json!({"delivery": d.id, "url": d.url, "event": d.event, "attempts": d.attempts, "error": e}),
                    )
                })
                .await?;
            delivered += usize::from(sent);
        }
        Ok(delivered)
    }

    /// Records one attempt at an outbox entry, in one transaction: delivered; or retried later
    /// with backoff; or, past `retry_for` (or when `gone`), failed for good and audited with the
    /// event `failure` names. True when delivered.
    pub(super) async fn settle_delivery(
        &self,
        mut d: OutboxMessage,
        outcome: std::result::Result<(), String>,
        retry_for: Duration,
        gone: bool,
        failure: impl FnOnce(&OutboxMessage, &str) -> (&'static str, serde_json::Value),
    ) -> Result<bool> {
        d.attempts += 1;
        let mut final_failure = None;
        let sent = outcome.is_ok();
        match outcome {
            Ok(()) => {
                d.state = DeliveryState::Delivered;
                d.last_error = None;
            }
            Err(e) => {
                let retry_ms = u64::try_from(retry_for.as_millis()).unwrap_or(u64::MAX);
                d.last_error = Some(e.clone());
                if gone || now_millis().saturating_sub(d.created_ms) > retry_ms {
                    d.state = DeliveryState::Failed;
                    final_failure = Some(failure(&d, &e));
                } else {
                    d.next_attempt_ms =
                        now_millis() + u64::try_from(backoff(d.attempts).as_millis()).unwrap_or(u64::MAX);
                }
            }
        }
        let outcome = match d.state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Pending => "retry",
        };
        self.core
            .metrics
            .deliveries
            .get_or_create(&crate::metrics::DeliveryLabels {
                channel: d.channel.as_str().into(),
                outcome: outcome.into(),
            })
            .inc();
        if d.channel != crate::model::Channel::Webhook && d.state != DeliveryState::Pending {
            // What a message carried (links, codes) need not outlive its sending.
            d.payload.clear();
        }
        self.core
            .db(move |s| {
                s.write(|tx| {
                    tx.put_delivery(&d)?;
                    if let Some((event, details)) = final_failure {
                        tx.audit_failure(event, None, None, details)?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(sent)
    }

    /// Adds an endpoint; without a secret one is generated (and returned once).
    /// Needs `webhooks:write`.
    pub async fn add_webhook(
        &self,
        by: &super::Principal,
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
    pub async fn list_webhooks(&self, by: &super::Principal) -> Result<Vec<WebhookInfo>> {
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
    pub async fn delete_webhook(&self, by: &super::Principal, id: uuid::Uuid) -> Result<()> {
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

    /// Needs `webhooks:read`.
    pub async fn webhook_status(&self, by: &super::Principal) -> Result<DeliveryCounts> {
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
        all.retain(|d| d.state != DeliveryState::Delivered);
        all.sort_by_key(|d| std::cmp::Reverse(d.id));
        c.troubled = all
            .into_iter()
            .take(20)
            .map(|d| {
                let state = format!("{:?}", d.state).to_lowercase();
                (d.id.to_string(), d.url, d.event, d.attempts, state, d.last_error)
            })
            .collect();
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(2400) && backoff(1) >= Duration::from_millis(1600));
        assert!(backoff(30) <= Duration::from_secs(4320));
    }
}
