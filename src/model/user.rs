use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UnixTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    /// Normalised (lower-case) address.
    #[serde(default)]
    pub email: Option<String>,
    /// E.164.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// The name the user goes by, shown to them and to applications (`name`); not a login name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// argon2id PHC string; `None` until the user has a password.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub status: UserStatus,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub phone_verified: bool,
    /// Set by an admin: the user should change their password (cleared when they do).
    #[serde(default)]
    pub password_reset_required: bool,
    /// Bumped, in the same transaction, by every change to what the user may do (roles, status,
    /// their roles' permissions). Tokens carry it; a revocation refuses those below a value.
    #[serde(default)]
    pub authz_gen: u64,
    pub created_at: UnixTime,
    #[serde(default)]
    pub updated_at: UnixTime,
    /// `en` or `ru`: the language of the messages the user gets.
    #[serde(default)]
    pub locale: Option<String>,
    /// The TOTP factor, once enrolment began.
    #[serde(default)]
    pub totp: Option<TotpFactor>,
    /// Hashes of unused recovery codes.
    #[serde(default)]
    pub recovery_codes: Vec<Vec<u8>>,
    /// The user asked not to be told of logins from new devices.
    #[serde(default)]
    pub new_device_notices_off: bool,
    /// Hashes of the devices (user agents) the user logged in from, newest last, bounded.
    #[serde(default)]
    pub known_devices: Vec<Vec<u8>>,
    /// When a login name was last proven by a round trip through its channel (0: never, or
    /// before this was recorded).
    #[serde(default)]
    pub proven_at: UnixTime,
    /// The relying parties the user let sign them in, and with which scopes.
    #[serde(default)]
    pub consents: Vec<Consent>,
}

/// A user's yes to a relying party, until they take it back or the client goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Consent {
    pub client_id: Uuid,
    pub scopes: Vec<String>,
    pub at: UnixTime,
}

/// The channel a login name is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameChannel {
    Email,
    Phone,
}

/// A TOTP (RFC 6238) second factor.
#[derive(Clone, Serialize, Deserialize)]
pub struct TotpFactor {
    /// The shared secret, encrypted with the configured data key.
    pub secret: String,
    /// False while enrolment waits for a first code.
    pub enabled: bool,
    /// The last time step accepted: a code is never accepted twice.
    #[serde(default)]
    pub last_step: u64,
    pub created_at: UnixTime,
}

impl User {
    /// A fresh active account with the given roles and nothing else yet: no login names,
    /// password, second factor or verified contact.
    pub fn new(roles: Vec<String>, now: UnixTime) -> Self {
        User {
            id: Uuid::now_v7(),
            email: None,
            phone: None,
            username: None,
            display_name: None,
            password_hash: None,
            roles,
            status: UserStatus::Active,
            email_verified: false,
            phone_verified: false,
            password_reset_required: false,
            authz_gen: 0,
            created_at: now,
            updated_at: now,
            locale: None,
            totp: None,
            recovery_codes: Vec::new(),
            new_device_notices_off: false,
            known_devices: Vec::new(),
            proven_at: 0,
            consents: Vec::new(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }

    /// Whether the account has a proven login name: one confirmed by a round trip through
    /// its own channel (a confirmation, a reset or a recovery).
    pub fn has_proven_name(&self) -> bool {
        (self.email.is_some() && self.email_verified) || (self.phone.is_some() && self.phone_verified)
    }

    /// Where a reset or recovery goes: a proven name, the channel asked for first; a pending
    /// name only while no name is proven (that mail is how the first proof happens).
    pub fn recovery_address(&self, prefer: NameChannel) -> Option<(NameChannel, &str)> {
        let email = self.email.as_deref().map(|e| (NameChannel::Email, e, self.email_verified));
        let phone = self.phone.as_deref().map(|p| (NameChannel::Phone, p, self.phone_verified));
        let order = if prefer == NameChannel::Phone { [phone, email] } else { [email, phone] };
        let proven = self.has_proven_name();
        order.into_iter().flatten().find(|(_, _, ok)| *ok || !proven).map(|(c, a, _)| (c, a))
    }

    /// Records a round trip through `channel` to `address` (which becomes that name). A proof
    /// covers that channel only. The first proof makes the channel the owner's: the other name,
    /// still pending, is removed. True when this was the first proof.
    pub fn prove(&mut self, channel: NameChannel, address: String, at: UnixTime) -> bool {
        let first = !self.has_proven_name();
        match channel {
            NameChannel::Email => {
                self.email = Some(address);
                self.email_verified = true;
                if first {
                    self.phone = None;
                    self.phone_verified = false;
                }
            }
            NameChannel::Phone => {
                self.phone = Some(address);
                self.phone_verified = true;
                if first {
                    self.email = None;
                    self.email_verified = false;
                }
            }
        }
        self.proven_at = at;
        first
    }

    /// The channel `address` is this account's current name on, if it is one.
    pub fn channel_of(&self, address: &str) -> Option<NameChannel> {
        if self.email.as_deref() == Some(address) {
            Some(NameChannel::Email)
        } else if self.phone.as_deref() == Some(address) {
            Some(NameChannel::Phone)
        } else {
            None
        }
    }

    pub fn has_totp(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.enabled)
    }
}

/// Never print the password hash.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("status", &self.status)
            .field("totp", &self.totp.as_ref().map(|t| t.enabled))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_both() -> User {
        User {
            email: Some("victim@example.com".into()),
            phone: Some("+14155550100".into()),
            ..User::new(vec!["user".into()], 1)
        }
    }

    #[test]
    fn a_pending_name_gets_a_reset_only_while_nothing_is_proven() {
        let mut u = pending_both();
        assert_eq!(u.recovery_address(NameChannel::Phone), Some((NameChannel::Phone, "+14155550100")));
        assert!(u.prove(NameChannel::Email, "victim@example.com".into(), 5), "the first proof");
        assert_eq!(u.phone, None, "the pending phone goes with the first proof");
        u.phone = Some("+14155550101".into());
        assert_eq!(u.recovery_address(NameChannel::Phone), Some((NameChannel::Email, "victim@example.com")));
        assert!(!u.prove(NameChannel::Phone, "+14155550101".into(), 6));
        assert!(u.email_verified && u.phone_verified && u.proven_at == 6);
    }

    #[test]
    fn a_proof_covers_its_own_channel_only() {
        let mut u = pending_both();
        u.prove(NameChannel::Phone, "+14155550100".into(), 5);
        assert!(u.phone_verified && !u.email_verified && u.email.is_none());
    }
}
