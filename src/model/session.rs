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
    /// A login provider signed the user in: when it says the user authenticated there, 0 when
    /// it does not say (GitHub, Facebook, OAuth 2.0). A client's demand for a fresh login goes
    /// by this: a provider's kept session is no login at authd's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_auth_time: Option<UnixTime>,
}

impl Session {
    pub fn authenticated_at(&self) -> UnixTime {
        if self.auth_time == 0 { self.created_at } else { self.auth_time }
    }

    /// When the user last proved who they are, as far as authd can tell: for a login through a
    /// provider, what the provider said (0 when it did not say, or the session is older than the
    /// field).
    pub fn proven_at(&self) -> UnixTime {
        let at = self.authenticated_at();
        match self.upstream_auth_time {
            Some(t) => t.min(at),
            None if self.amr.len() == 1 && self.amr[0] == "fed" => 0,
            None => at,
        }
    }

    /// The `auth_time` an ID token tells: when the provider says the user authenticated there,
    /// else when the login reached authd.
    pub fn auth_time_claim(&self) -> UnixTime {
        match self.proven_at() {
            0 => self.authenticated_at(),
            t => t,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(auth_time: UnixTime, upstream_auth_time: Option<UnixTime>) -> Session {
        let s = r#"{"id":"0190f5a0-0000-7000-8000-000000000000","user_id":"0190f5a0-0000-7000-8000-000000000001",
            "created_at":1000,"last_used_at":1000,"expires_at":9000,"absolute_expires_at":9000}"#;
        Session { auth_time, upstream_auth_time, ..serde_json::from_str(s).unwrap() }
    }

    #[test]
    fn a_login_through_a_provider_is_as_recent_as_the_provider_says() {
        assert_eq!(session(1000, None).proven_at(), 1000);
        assert_eq!(session(0, None).proven_at(), 1000, "older sessions count from their creation");
        assert_eq!(session(1000, Some(400)).proven_at(), 400);
        assert_eq!(session(1000, Some(0)).proven_at(), 0, "a provider that does not say proves no time");
        assert_eq!(session(1000, Some(5000)).proven_at(), 1000, "never later than the login at authd");
        let fed = |upstream| Session { amr: vec!["fed".into()], ..session(1000, upstream) };
        assert_eq!(fed(None).proven_at(), 0, "a provider's login from before the field proves no time");
        assert_eq!((fed(Some(0)).auth_time_claim(), fed(Some(400)).auth_time_claim()), (1000, 400));
        // Stored before the field existed: read as a login at authd.
        let old: Session = serde_json::from_str(&serde_json::to_string(&session(1000, None)).unwrap()).unwrap();
        assert_eq!(old.upstream_auth_time, None);
    }
}
