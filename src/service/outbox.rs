//! The outbox: messages to people (email, SMS) rendered and queued in the transaction of the
//! change that causes them, beside webhook deliveries; then delivered in the background with
//! retries (Standard Webhooks headers and signature, exponential backoff with jitter), final
//! failures audited.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use uuid::Uuid;

use super::core::Core;
use crate::{
    cache::Expiring,
    config::webhook_key,
    error::{Error, Result},
    messages::{MessageKind, Rendered, Signed, duration_words, pick_locale},
    model::{Channel, DeliveryState, OutboxMessage, User, now_millis},
    security::{random::random_bytes, signature::sign},
};

/// Where a message goes and in which language.
pub(crate) struct Recipient {
    pub address: String,
    pub locale: String,
}

/// Renders, queues and delivers what authd sends.
#[derive(Clone)]
pub struct Outbox {
    core: Arc<Core>,
    /// Addresses sent a message lately (`verification.resend_interval`), by hash.
    recent_sends: Expiring<Uuid, ()>,
}

impl Outbox {
    pub(super) fn new(core: Arc<Core>) -> Self {
        let interval = core.cfg.verification.resend_interval.0.max(Duration::from_millis(1));
        Self { core, recent_sends: Expiring::new(100_000, interval) }
    }

    pub(super) fn sweep(&self) {
        self.recent_sends.sweep();
    }

    /// The language of a user's messages.
    pub(super) fn locale_of(&self, user: Option<&User>, accept_language: Option<&str>) -> String {
        pick_locale(user.and_then(|u| u.locale.as_deref()), accept_language, &self.core.cfg.messages.default_locale)
    }

    pub(super) fn valid_for(&self, locale: &str, secs: u64) -> String {
        duration_words(locale, secs)
    }

    /// Renders a message into an outbox entry; the caller puts it in its transaction.
    pub(super) fn message(
        &self,
        kind: MessageKind,
        to: &Recipient,
        mut vars: BTreeMap<&'static str, String>,
    ) -> Result<OutboxMessage> {
        vars.insert("product", self.core.cfg.messages.product_name.clone());
        vars.entry("address").or_insert_with(|| to.address.clone());
        let rendered = self
            .core
            .outbound
            .templates
            .render(kind, &to.locale, &vars)
            .map_err(|e| Error::Internal(format!("message template: {e}")))?;
        let id = Uuid::now_v7();
        let body = serde_json::to_vec(&rendered).map_err(|e| Error::Internal(e.to_string()))?;
        let t = now_millis();
        Ok(OutboxMessage {
            id,
            channel: if kind.is_sms() { Channel::Sms } else { Channel::Email },
            url: to.address.clone(),
            endpoint_id: None,
            event: kind.name().to_owned(),
            payload: self.core.data_key.seal(&format!("message:{id}"), &body),
            created_ms: t,
            next_attempt_ms: t,
            attempts: 0,
            state: DeliveryState::Pending,
            last_error: None,
        })
    }

    /// Email and SMS not delivered yet, oldest first: (attempts, last error).
    pub async fn pending_messages(&self) -> Result<Vec<(u32, Option<String>)>> {
        let all = self.core.db(|s| s.read(|tx| tx.deliveries().map_err(Error::from))).await?;
        Ok(all
            .into_iter()
            .filter(|d| d.channel != Channel::Webhook && d.state == DeliveryState::Pending)
            .map(|d| (d.attempts, d.last_error))
            .collect())
    }

    /// Sends one queued email or SMS; true when it went out.
    pub(super) async fn deliver_message(&self, d: OutboxMessage) -> Result<bool> {
        let outcome = match self.core.data_key.open(&format!("message:{}", d.id), &d.payload) {
            Err(e) => Err(e.to_string()),
            Ok(body) => match serde_json::from_slice::<Rendered>(&body) {
                Err(e) => Err(format!("queued message unreadable: {e}")),
                Ok(m) if d.channel == Channel::Sms => {
                    self.core.outbound.sms.send(&d.id.to_string(), &d.url, &m.text, &d.event).await
                }
                Ok(m) => self.core.outbound.email.send(&d.url, &m).await,
            },
        };
        if let Err(e) = &outcome {
            tracing::warn!(delivery = %d.id, kind = %d.event, error = %e, "message not sent");
        }
        let retry_for = self.core.cfg.messages.retry_for.0;
        self.settle_delivery(d, outcome, retry_for, false, |d, e| {
            let channel = if d.channel == Channel::Sms { "sms" } else { "email" };
            (
                "message.failed",
                serde_json::json!({"delivery": d.id, "channel": channel, "kind": d.event, "attempts": d.attempts, "error": e}),
            )
        })
        .await
    }

    /// The link a message carries: the application's page (`links.base_url`) or ours.
    pub(super) fn link(&self, page: &str, token: &str) -> String {
        let base = match &self.core.cfg.links.base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => format!("{}/ui", self.core.public_url()),
        };
        format!("{base}/{page}?token={token}")
    }

    /// At most one request per `key` per `verification.resend_interval`, on every node that
    /// shares a cache.
    pub(super) async fn once_per_interval(&self, key: &str) -> Result<()> {
        let interval = self.core.cfg.verification.resend_interval.0;
        if interval.is_zero() {
            return Ok(());
        }
        let hashed = crate::security::random::token_hash(key);
        let local_key = Uuid::from_slice(&hashed[..16]).unwrap_or_default();
        let mut first = self.recent_sends.get(&local_key).is_none();
        if first && let Some(shared) = &self.core.replay {
            match shared.claim(&format!("send:{local_key}"), interval).await {
                Ok(claimed) => first = claimed,
                Err(e) => tracing::warn!(error = %e, "send limits fall back to this node's memory"),
            }
        }
        if !first {
            return Err(Error::RateLimited(interval.as_secs().max(1)));
        }
        self.recent_sends.insert(local_key, ());
        Ok(())
    }
    /// Sends every due delivery once; returns how many were delivered.
    pub async fn deliver_due(&self) -> Result<usize> {
        let now = now_millis();
        let (due, stored) =
            self.core.db(move |s| s.read(|tx| Ok((tx.due_deliveries(now, 100)?, tx.stored_webhooks()?)))).await?;
        let mut delivered = 0;
        for d in due {
            if d.channel == Channel::Logout {
                delivered += usize::from(self.deliver_logout(d).await?);
                continue;
            }
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

    /// Sends one back-channel logout token, signed now so that a retry carries a fresh `iat`.
    async fn deliver_logout(&self, d: OutboxMessage) -> Result<bool> {
        let notice: Option<super::id_tokens::LogoutNotice> = serde_json::from_str(&d.payload).ok();
        let client = match &notice {
            Some(n) => {
                let id = n.client_id;
                self.core.db(move |s| s.read(|tx| tx.client(id).map_err(Error::from))).await?
            }
            None => None,
        };
        let gone = client.is_none();
        let outcome = match (notice, client) {
            (Some(n), Some(c)) => match super::id_tokens::mint_logout_token(&self.core, &n, c.id_token_alg()) {
                Ok(token) => {
                    self.core.outbound.webhooks.post_form(&d.url, &d.id.to_string(), &[("logout_token", &token)]).await
                }
                Err(e) => Err(e.to_string()),
            },
            _ => Err("client no longer registered".to_string()),
        };
        let retry_for = self.core.cfg.webhook_delivery.retry_for.0;
        self.settle_delivery(d, outcome, retry_for, gone, |d, e| {
            (
                "logout.delivery_failed",
                serde_json::json!({"delivery": d.id, "url": d.url, "attempts": d.attempts, "error": e}),
            )
        })
        .await
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
}

fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.min(12)).min(Duration::from_secs(3600));
    // ±20 % jitter so that retries of many messages spread out.
    let jitter = f64::from(random_bytes::<1>()[0]) / 255.0 * 0.4 + 0.8;
    base.mul_f64(jitter)
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
