//! Messages to people (email, SMS): rendered and queued in the transaction of the change that
//! causes them, on the outbox webhooks use, then delivered in the background with retries.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::AuthService;
use crate::{
    error::{Error, Result},
    messages::{EmailSender, MessageKind, Rendered, SmsSender, Templates, duration_words, pick_locale},
    model::{Channel, DeliveryState, OutboxMessage, User, now_millis},
};

/// The senders and templates, built once at start.
pub(crate) struct Outbound {
    pub templates: Templates,
    pub email: EmailSender,
    pub sms: SmsSender,
    pub webhooks: crate::messages::WebhookSender,
}

/// Where a message goes and in which language.
pub(crate) struct Recipient {
    pub address: String,
    pub locale: String,
}

impl AuthService {
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
    pub async fn outbox_messages(&self) -> Result<Vec<(u32, Option<String>)>> {
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
}
