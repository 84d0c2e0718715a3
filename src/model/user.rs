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
        }
    }

    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
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
