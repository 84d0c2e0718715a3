//! Response bodies shared by several operations.

use poem_openapi::{Enum, Object, Tags};
use uuid::Uuid;

use crate::{
    model::{AuditEvent, Session, User, UserStatus, rfc3339},
    service::TokenPair,
};

#[derive(Tags)]
pub enum ApiTags {
    /// Registration, login, refresh and logout
    Auth,
    /// The signed-in user
    Me,
    /// Token introspection
    Tokens,
    /// Discovery documents for token verifiers
    Discovery,
    /// Liveness and readiness
    Health,
    /// Administration: users, sessions, roles, keys
    Admin,
    /// Forward-auth for reverse proxies
    Authz,
}

/// Whether an account may sign in.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Disabled,
}

impl From<AccountStatus> for UserStatus {
    fn from(s: AccountStatus) -> Self {
        match s {
            AccountStatus::Active => UserStatus::Active,
            AccountStatus::Disabled => UserStatus::Disabled,
        }
    }
}

impl From<UserStatus> for AccountStatus {
    fn from(s: UserStatus) -> Self {
        match s {
            UserStatus::Active => AccountStatus::Active,
            UserStatus::Disabled => AccountStatus::Disabled,
        }
    }
}

/// A user account (never its password hash).
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct UserResponse {
    pub id: Uuid,
    /// Lower-cased email address.
    pub email: Option<String>,
    /// E.164 phone number.
    pub phone: Option<String>,
    pub username: Option<String>,
    /// The name the user goes by.
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub status: AccountStatus,
    pub email_verified: bool,
    pub phone_verified: bool,
    /// An admin asked the user to change their password (`POST /v1/me/password` clears it).
    pub password_reset_required: bool,
    /// The language of the user's messages (`en`, `ru`), when they chose one.
    pub locale: Option<String>,
    /// Whether a second factor (TOTP) is on.
    pub mfa_enabled: bool,
    /// Whether logins from new devices are announced by mail.
    pub new_device_notices: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self::from(&u)
    }
}

impl From<&User> for UserResponse {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            phone: u.phone.clone(),
            username: u.username.clone(),
            name: u.display_name.clone(),
            roles: u.roles.clone(),
            status: u.status.into(),
            email_verified: u.email_verified,
            phone_verified: u.phone_verified,
            password_reset_required: u.password_reset_required,
            mfa_enabled: u.has_totp(),
            new_device_notices: !u.new_device_notices_off,
            locale: u.locale.clone(),
            created_at: rfc3339(u.created_at),
        }
    }
}

/// OAuth 2.0-shaped token response (RFC 6749 §5.1).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenResponse {
    /// JWT access token (`typ: at+jwt`); absent in cookie mode when it travels in a cookie.
    #[oai(skip_serializing_if_is_none)]
    pub access_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque refresh token; single use, rotated on every refresh. Absent in cookie mode.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The session (device) these tokens belong to.
    pub session_id: Uuid,
}

impl From<TokenPair> for TokenResponse {
    fn from(t: TokenPair) -> Self {
        Self {
            access_token: Some(t.access_token),
            token_type: "Bearer".into(),
            expires_in: t.expires_in,
            refresh_token: Some(t.refresh_token),
            refresh_expires_in: t.refresh_expires_in,
            session_id: t.session_id,
        }
    }
}

/// A signed-in device.
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionResponse {
    pub id: Uuid,
    pub device_name: Option<String>,
    pub user_agent: Option<String>,
    /// Client IP at login or last refresh.
    pub ip: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

impl SessionResponse {
    pub fn new(s: Session, current: Uuid) -> Self {
        Self {
            current: s.id == current,
            id: s.id,
            device_name: s.device_name,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
        }
    }
}

/// One audit event.
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditEventResponse {
    pub id: Uuid,
    /// RFC 3339 UTC, milliseconds.
    pub time: String,
    /// e.g. `user.logged_in`, `user.login_failed`, `refresh.reuse_detected`.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// `user:<id>`, `cli`, `anonymous` or `system` (in a user's own feed, what others did shows
    /// as `an administrator`).
    pub actor: String,
    #[oai(skip_serializing_if_is_none)]
    pub subject: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub session_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub ip: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.time_ms);
        Self {
            id: e.id,
            time: humantime::format_rfc3339_millis(t).to_string(),
            event: e.event,
            outcome: e.outcome,
            actor: e.actor,
            subject: e.subject,
            session_id: e.session_id,
            ip: e.ip,
            user_agent: e.user_agent,
            details: e.details,
        }
    }
}
