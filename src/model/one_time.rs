use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UnixTime;

/// What a one-time secret may be spent on; a secret made for one purpose never serves another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    VerifyEmail,
    VerifyPhone,
    PasswordReset,
    /// The second step of a login on an account with a second factor.
    MfaLogin,
    /// A login that may only enrol a second factor (a role requires one).
    MfaEnrol,
    /// An external login under way: `state`, bound to the browser that started it.
    OAuthState,
    /// What an external login yields, for the application to exchange once.
    OAuthExchange,
    /// An OpenID Connect authorization code, for one relying party to redeem once.
    AuthorizationCode,
    /// A pushed authorization request (RFC 9126), used once.
    PushedRequest,
    /// A token that may only enrol a passkey (a passwordless sign-up, a recovery).
    PasskeyEnrol,
    /// Self-service account recovery: a mailed link and code, one secret.
    AccountRecovery,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::VerifyPhone => "verify_phone",
            Purpose::PasswordReset => "password_reset",
            Purpose::MfaLogin => "mfa_login",
            Purpose::MfaEnrol => "mfa_enrol",
            Purpose::OAuthState => "oauth_state",
            Purpose::OAuthExchange => "oauth_exchange",
            Purpose::AuthorizationCode => "authorization_code",
            Purpose::PushedRequest => "pushed_request",
            Purpose::PasskeyEnrol => "passkey_enrol",
            Purpose::AccountRecovery => "account_recovery",
        }
    }
}

/// A single-use secret (a mailed link and code, an SMS code, an MFA login step). Only hashes
/// are stored; it expires, has an attempt budget, and is deleted when spent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OneTimeSecret {
    /// `<purpose>:<address>` for confirming an address, `<purpose>:<user id>` where a user holds
    /// at most one (a new one replaces it), or `<purpose>:<random>` where several may be live.
    pub id: String,
    pub purpose: Purpose,
    /// Whose it is; `None` for a step no account is known for yet (an external login's start).
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// SHA-256 of the long secret (the link token, the `mfa_token`).
    #[serde(default)]
    pub token_hash: Option<Vec<u8>>,
    /// Keyed hash of the short code typed by hand.
    #[serde(default)]
    pub code_hash: Option<Vec<u8>>,
    /// The address being confirmed (a new email waits here until it is confirmed).
    #[serde(default)]
    pub target: Option<String>,
    /// Authentication methods already passed (`pwd`, `fed`), carried into the tokens.
    #[serde(default)]
    pub amr: Vec<String>,
    /// How the first step signed in (`password`, `oauth:<provider>`), for the audit log.
    #[serde(default)]
    pub method: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Wrong codes left before the secret burns. A secret issued again under the same id keeps
    /// this count until `budget_until`: the guess budget is not renewed by a re-issue.
    pub attempts_left: u32,
    /// Until when `attempts_left` carries over to a secret issued again under this id.
    #[serde(default)]
    pub budget_until: UnixTime,
    /// What the step needs later (an external login's nonce and PKCE verifier …), sealed with
    /// the data key.
    #[serde(default)]
    pub sealed: Option<String>,
    /// For a redeemed authorization code: the session its tokens belong to, ended if the code
    /// is presented again.
    #[serde(default)]
    pub issued: Option<Uuid>,
}

impl OneTimeSecret {
    /// The id of the one live secret for `purpose` and `key` (an address or a user id).
    pub fn id_for(purpose: Purpose, key: impl std::fmt::Display) -> String {
        format!("{}:{key}", purpose.as_str())
    }
}
