use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One security-relevant event. Never holds a secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    /// UUIDv7: orders events by time.
    pub id: Uuid,
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    /// e.g. `user.registered`, `login.failed`, `refresh.reuse_detected`.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Who did it: `user:<id>`, `cli`, `anonymous`, `system`.
    pub actor: String,
    /// The account it concerns.
    #[serde(default)]
    pub subject: Option<Uuid>,
    #[serde(default)]
    pub session_id: Option<Uuid>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub details: serde_json::Value,
}
