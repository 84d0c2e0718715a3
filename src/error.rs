//! The domain error: one enum for every layer above the store, each variant with a stable
//! machine-readable code. HTTP mapping happens once, in `api::problem`.

use crate::store::StoreError;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), code: code.to_owned(), message: message.into() }
    }
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token was sent: the Authorization header must be `Bearer <token>`")]
    Missing,
    #[error("the token is not a well-formed compact JWS")]
    Malformed,
    #[error("the token header is not one this server issues")]
    BadHeader,
    #[error("the token was signed by an unknown or retired key")]
    UnknownKey,
    #[error("the token signature does not verify")]
    BadSignature,
    #[error("the token claims are malformed or incomplete")]
    BadClaims,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has been revoked")]
    Revoked,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Missing
            | TokenError::Malformed
            | TokenError::BadHeader
            | TokenError::UnknownKey
            | TokenError::BadSignature
            | TokenError::BadClaims => "invalid_token",
            TokenError::WrongIssuer => "invalid_issuer",
            TokenError::WrongAudience => "invalid_audience",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::Revoked => "token_revoked",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Well-formed, but against a rule the schema cannot express (password strength, a taken
    /// shape of address …): 422.
    #[error("{}", .0.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// Not what the documented schema accepts (bad JSON, wrong type, unknown field, too long,
    /// a bad parameter): 400.
    #[error("{}", .0.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; "))]
    Malformed(Vec<FieldError>),
    #[error("no such endpoint")]
    NoRoute,
    #[error("this method is not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request took too long")]
    RequestTimeout,
    #[error("{0} is already taken")]
    Conflict(&'static str),
    #[error("invalid login or password")]
    InvalidCredentials,
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("the account is disabled")]
    AccountDisabled,
    #[error("unknown client or wrong client secret")]
    InvalidClient,
    #[error("unsupported grant_type: authorization_code, refresh_token or client_credentials")]
    UnsupportedGrantType,
    #[error("this client may not use this grant")]
    UnauthorizedClient,
    /// OAuth `invalid_grant`: a code or refresh token that is wrong, spent, expired or another
    /// client's.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// OAuth `invalid_request`: a protocol parameter missing or wrong.
    #[error("{0}")]
    InvalidRequest(String),
    #[error(
        "this token was issued to an application for its scopes; authd's own account endpoints need a token from signing in to authd"
    )]
    InsufficientScope,
    #[error("the refresh token is invalid or expired")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("a role of this account now requires a second factor; the session has ended, sign in again")]
    SecondFactorRequired,
    #[error("{0}")]
    InvalidToken(TokenError),
    #[error("a request authenticated by cookie must echo the CSRF cookie in an X-CSRF-Token header")]
    CsrfFailed,
    #[error("this needs the `{0}` permission")]
    Forbidden(String),
    #[error("you cannot assign role `{role}`: it grants `{permission}`, which you do not hold")]
    RoleNotGrantable { role: String, permission: String },
    #[error("this principal holds `{0}`, which you do not hold; only someone who does may change it")]
    TargetExceedsCaller(String),
    #[error("you cannot grant or revoke `{0}`: you do not hold it")]
    PermissionNotHeld(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("unknown role `{0}`")]
    UnknownRole(String),
    #[error("this would leave no active admin; make another user admin first")]
    LastAdmin,
    #[error("role `{0}` is held by {1} user(s); pass force to take it from them")]
    RoleInUse(String, usize),
    #[error("{0}")]
    BuiltinRole(String),
    #[error("too many password checks in progress; retry shortly")]
    Busy,
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    #[error("too many failed attempts; retry in {0} s")]
    TooManyAttempts(u64),
    #[error(
        "after repeated failures, this needs a solved challenge: POST /v1/auth/challenge, then send `challenge` and `nonce` (proof of work) or `captcha` (the CAPTCHA's response token) with the request"
    )]
    ChallengeRequired,
    #[error("{0}")]
    ChallengeFailed(ChallengeError),
    #[error("the link or code is wrong, or was already used")]
    InvalidCode,
    #[error("the link or code has expired; ask for a new one")]
    CodeExpired,
    #[error("confirm your email address first: follow the link we sent, or ask for a new one")]
    EmailUnverified,
    #[error("confirm your phone number first: enter the code we sent, or ask for a new one")]
    PhoneUnverified,
    /// The password was right; the second factor is next. Carries the `mfa_token`.
    #[error("this account has two-factor authentication: send a code with the mfa_token to POST /v1/auth/login/mfa")]
    MfaRequired(String),
    /// A role of the account requires a second factor it does not have. Carries a token that
    /// may only enrol one.
    #[error(
        "a role of this account requires two-factor authentication: enrol a factor with the mfa_token at POST /v1/auth/mfa/enrol"
    )]
    MfaEnrolmentRequired(String),
    #[error("the mfa_token is invalid, expired or already used; sign in again")]
    InvalidMfaToken,
    #[error("the code is wrong or was already used")]
    InvalidMfaCode,
    #[error("this needs a recent sign-in: sign in again, then retry")]
    StepUpRequired,
    #[error("two-factor authentication is already enabled")]
    MfaAlreadyEnabled,
    #[error("two-factor authentication is not enabled")]
    MfaNotEnabled,
    #[error("redirect_uri is not one of oauth.allowed_redirects (compared exactly)")]
    InvalidRedirectUri,
    #[error("this login is unknown, spent, expired or was started in another browser; start again")]
    InvalidState,
    /// The provider's account opens no account here, and none was made for it: sign-up is off,
    /// or an account may already have its email. One answer for both, so that it never tells
    /// whether an account has an email.
    #[error(
        "this provider account is not linked to an account here: sign in another way, then link the provider from your account"
    )]
    IdentityNotLinked,
    #[error(
        "this is the last way to sign in to the account; set a password, add a passkey or link another provider first"
    )]
    LastLoginMethod,
    #[error("the passkey was not accepted; try again, or sign in another way")]
    InvalidPasskey,
    /// A new passkey the server will not register; the message says why.
    #[error("the passkey cannot be registered: {0}")]
    PasskeyRejected(String),
    #[error("this passkey ceremony is unknown, already finished, expired or another's; start again")]
    InvalidCeremony,
    #[error("passkeys need server.public_url with a host name (browsers refuse an IP address)")]
    PasskeysUnavailable,
    #[error("the enrolment token is invalid, expired or already used")]
    InvalidEnrolmentToken,
    /// A role requires two factors and the account has a passkey: the password alone does not
    /// open an enrolment.
    #[error("a role of this account requires two factors: sign in with your passkey")]
    PasskeyRequired,
    /// A recovery of an account with an authenticator app needs its code (or a recovery code).
    #[error(
        "this account has an authenticator app: send its current code, or a recovery code, as `factor` with the link or code"
    )]
    FactorRequired,
    /// The provider cannot be reached; the message is for logs only.
    #[error("the provider is unavailable: {0}")]
    ProviderUnavailable(String),
    #[error("storage failure: {0}")]
    Storage(StoreError),
    /// The database cannot be reached; the message is for logs only.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) | Error::Malformed(_) => "validation_failed",
            Error::NoRoute => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::RequestTimeout => "request_timeout",
            Error::Conflict(_) => "conflict",
            Error::InvalidCredentials => "invalid_credentials",
            Error::WrongCurrentPassword => "invalid_current_password",
            Error::AccountDisabled => "account_disabled",
            Error::InvalidRefreshToken => "invalid_refresh_token",
            Error::InvalidClient => "invalid_client",
            Error::UnsupportedGrantType => "unsupported_grant_type",
            Error::UnauthorizedClient => "unauthorized_client",
            Error::InvalidGrant(_) => "invalid_grant",
            Error::InvalidRequest(_) => "invalid_request",
            Error::InsufficientScope => "insufficient_scope",
            Error::RefreshTokenReused => "refresh_token_reused",
            Error::SecondFactorRequired => "second_factor_required",
            Error::InvalidToken(e) => e.code(),
            Error::Forbidden(_) => "insufficient_permission",
            Error::RoleNotGrantable { .. } => "role_not_grantable",
            Error::TargetExceedsCaller(_) => "target_exceeds_caller",
            Error::PermissionNotHeld(_) => "permission_not_held",
            Error::CsrfFailed => "csrf_failed",
            Error::NotFound(_) => "not_found",
            Error::UnknownRole(_) => "unknown_role",
            Error::LastAdmin => "last_admin",
            Error::RoleInUse(..) => "role_in_use",
            Error::BuiltinRole(_) => "builtin_role",
            Error::Busy => "overloaded",
            Error::RateLimited(_) => "rate_limited",
            Error::TooManyAttempts(_) => "too_many_attempts",
            Error::ChallengeRequired => "challenge_required",
            Error::ChallengeFailed(_) => "challenge_failed",
            Error::InvalidCode => "invalid_code",
            Error::CodeExpired => "code_expired",
            Error::EmailUnverified => "email_unverified",
            Error::PhoneUnverified => "phone_unverified",
            Error::MfaRequired(_) => "mfa_required",
            Error::MfaEnrolmentRequired(_) => "mfa_enrolment_required",
            Error::InvalidMfaToken => "invalid_mfa_token",
            Error::InvalidMfaCode => "invalid_mfa_code",
            Error::StepUpRequired => "step_up_required",
            Error::MfaAlreadyEnabled => "mfa_already_enabled",
            Error::MfaNotEnabled => "mfa_not_enabled",
            Error::InvalidRedirectUri => "invalid_redirect_uri",
            Error::InvalidState => "invalid_state",
            Error::IdentityNotLinked => "identity_not_linked",
            Error::LastLoginMethod => "last_login_method",
            Error::InvalidPasskey => "invalid_passkey",
            Error::PasskeyRejected(_) => "passkey_rejected",
            Error::InvalidCeremony => "invalid_ceremony",
            Error::PasskeysUnavailable => "passkeys_unavailable",
            Error::InvalidEnrolmentToken => "invalid_enrolment_token",
            Error::PasskeyRequired => "passkey_required",
            Error::FactorRequired => "factor_required",
            Error::ProviderUnavailable(_) => "provider_unavailable",
            Error::Storage(_) | Error::Internal(_) => "internal_error",
            Error::StorageUnavailable(_) => "storage_unavailable",
        }
    }

    pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, code, message)])
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(field) => Error::Conflict(field),
            StoreError::Unavailable(why) => Error::StorageUnavailable(why),
            other => Error::Storage(other),
        }
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Error::InvalidToken(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a solved challenge (proof of work or CAPTCHA) was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the challenge is malformed or was not issued by this server")]
    Invalid,
    #[error("the challenge has expired; request a new one")]
    Expired,
    #[error("the challenge was already used; request a new one")]
    Reused,
    #[error("the nonce does not solve the challenge")]
    Unsolved,
    #[error("the CAPTCHA response was not accepted; solve it again")]
    Captcha,
}
