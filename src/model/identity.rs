use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UnixTime;

/// An account at an external provider (Google, GitHub, any OpenID Connect issuer) linked to a
/// user: `(provider, subject)` is unique across all users.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The configured provider name (`[oauth.providers.<name>]`).
    pub provider: String,
    /// The provider's stable id of the account (`sub`, GitHub's numeric id, …).
    pub subject: String,
    /// The email the provider reported, and whether it vouched for it.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub name: Option<String>,
    pub created_at: UnixTime,
    #[serde(default)]
    pub last_login_at: UnixTime,
}
