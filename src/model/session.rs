use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UnixTime;

/// One signed-in device: the family every refresh token of that login belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(default)]
    pub device_name: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    pub created_at: UnixTime,
    pub last_used_at: UnixTime,
    /// When the current refresh token stops working (sliding, renewed on every refresh).
    pub expires_at: UnixTime,
    /// Hard end of the session, whatever the refreshes.
    pub absolute_expires_at: UnixTime,
    /// How many times the refresh token was rotated.
    #[serde(default)]
    pub generation: u64,
    /// How the user authenticated at login (RFC 8176): `pwd`, `otp`.
    #[serde(default)]
    pub amr: Vec<String>,
    /// When the user authenticated; 0 in sessions older than this field (then `created_at`).
    #[serde(default)]
    pub auth_time: UnixTime,
    /// The relying party this session's tokens were issued to (OpenID Connect); `None` for
    /// authd's own sessions. Its refresh tokens serve only that client.
    #[serde(default)]
    pub client_id: Option<Uuid>,
    /// The browser session (hosted login) a relying party's session was opened under: ending
    /// that ends this too.
    #[serde(default)]
    pub parent: Option<Uuid>,
    /// The scopes granted to the relying party, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
}

impl Session {
    pub fn authenticated_at(&self) -> UnixTime {
        if self.auth_time == 0 { self.created_at } else { self.auth_time }
    }
}

/// What a stored refresh-token hash points to. Rotated-out hashes are kept (as `used`) until
/// they would have expired, so that presenting one again is recognised as reuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub session_id: Uuid,
    pub used: bool,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// Every access token carrying this `sid` is refused.
    Session,
    /// Every access token of this user issued up to `since_ms`, or carrying an `authz_gen`
    /// below `min_gen`, is refused.
    UserBefore,
}

/// A revocation the per-request check must know about, persisted so that it holds across
/// restarts and dropped once every token it guards has expired.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub id: Uuid,
    /// Milliseconds since the epoch; meaningful for `UserBefore`.
    #[serde(default)]
    pub since_ms: u64,
    /// For `UserBefore`: tokens minted from an older authorization generation are refused,
    /// however late they were signed.
    #[serde(default)]
    pub min_gen: u64,
    pub expires_at: UnixTime,
}

/// Whether authentication methods (RFC 8176) went beyond one factor: a second factor (`otp`), or
/// a passkey (`hwk`, `swk`), which verifies its user on the device.
pub fn multi_factor(amr: &[String]) -> bool {
    amr.iter().any(|m| matches!(m.as_str(), "otp" | "hwk" | "swk"))
}
