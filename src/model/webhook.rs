use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where events of some types are sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub url: String,
    /// Event types (`user.logged_out`, …); a trailing `.*` matches a family, `*` everything.
    pub events: Vec<String>,
}

impl WebhookEndpoint {
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| {
            e == "*"
                || e == event
                || e.strip_suffix(".*")
                    .is_some_and(|family| event.strip_prefix(family).is_some_and(|r| r.starts_with('.')))
        })
    }
}

/// An endpoint added at run time (admin API or CLI), kept in the database with its secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredWebhook {
    pub id: Uuid,
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`
    pub secret: String,
    pub created_at: u64,
}

impl std::fmt::Debug for StoredWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredWebhook").field("id", &self.id).field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

/// What an outbox entry goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Webhook,
    Email,
    Sms,
    /// A back-channel logout token to a relying party.
    Logout,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Webhook, Channel::Email, Channel::Sms, Channel::Logout];

    /// The name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Logout => "logout",
        }
    }
}

/// One message to one endpoint or person, queued in the same transaction as the change that
/// causes it: the one outbox for webhooks, email and SMS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// The `webhook-id`: stays the same across retries, so receivers can drop duplicates.
    pub id: Uuid,
    #[serde(default)]
    pub channel: Channel,
    /// The endpoint URL; for email and SMS, the address or number.
    pub url: String,
    /// The stored endpoint it goes to; `None` for endpoints from the config file.
    #[serde(default)]
    pub endpoint_id: Option<Uuid>,
    /// The event type; for email and SMS, the message kind.
    pub event: String,
    /// The exact JSON body to send; for email and SMS, the rendered message sealed with the
    /// data key, emptied once delivered.
    pub payload: String,
    pub created_ms: u64,
    pub next_attempt_ms: u64,
    #[serde(default)]
    pub attempts: u32,
    pub state: DeliveryState,
    #[serde(default)]
    pub last_error: Option<String>,
}
