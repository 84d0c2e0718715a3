//! Plain data: what the store persists and services pass around. No I/O here.
//! Every record tolerates missing fields (`#[serde(default)]`) so that a field added later never
//! breaks a database written earlier.

mod audit;
mod client;
mod identity;
mod key;
mod login;
mod one_time;
mod passkey;
mod role;
mod session;
mod user;
mod webhook;

pub use audit::AuditEvent;
pub use client::{AuthMethod, Client, SCOPES};
pub use identity::Identity;
pub use key::{KeyState, SigningKeyRecord};
pub use login::{LoginName, login_names};
pub use one_time::{OneTimeSecret, Purpose};
pub use passkey::Passkey;
pub use role::{BUILTIN_ROLES, Role, granted_permissions, permission_matches};
pub use session::{RefreshRecord, Revocation, RevocationKind, Session, multi_factor};
pub use user::{Consent, NameChannel, TotpFactor, User, UserStatus};
pub use webhook::{Channel, DeliveryState, OutboxMessage, StoredWebhook, WebhookEndpoint};

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub type UnixTime = u64;

pub fn now() -> UnixTime {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// RFC 3339 UTC, seconds precision.
pub fn rfc3339(t: UnixTime) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(t)).to_string()
}
