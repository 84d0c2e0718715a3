//! `/v1/auth/*`: register, login, refresh, logout.

use super::fields::{
    Bounded, CaptchaField, ChallengeField, EmailField, LoginField, NonceField, PhoneField, TokenField, UsernameField,
};
use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, types::Password};

use super::cookies::{CookieNames, check_csrf, read_cookie};
use super::{
    auth_scheme::Caller,
    body::JsonBody,
    client::client_info,
    problem::ApiError,
    views::{ApiTags, TokenResponse, UserResponse},
};
use crate::{
    config::TokenTransport,
    error::Error,
    model::rfc3339,
    service::{AuthService, ChallengeOffer, ChallengeSolution, NewAccount, TokenPair},
};

pub struct AuthApi;

/// At least one of `email` and `phone`; `username` optional.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct RegisterRequest {
    /// Email address; compared case-insensitively.
    email: Option<EmailField>,
    /// Phone number in international form, e.g. `+14155552671`.
    phone: Option<PhoneField>,
    /// 3–32 characters of `a-z 0-9 . _ -` (stored lower-case), starting with a letter or digit.
    username: Option<UsernameField>,
    /// 8–256 characters; very common passwords are refused. Required unless
    /// `passwords.optional`: without it, the account starts with a passkey (see
    /// `enrolment_token` in the answer).
    #[oai(validator(max_length = 4096))]
    password: Option<Password>,
    /// The language of the account's messages: `en` or `ru` (default: from `Accept-Language`).
    #[oai(validator(max_length = 8))]
    locale: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct LoginRequest {
    /// Email, phone number or username.
    login: LoginField,
    #[oai(validator(max_length = 4096))]
    password: Password,
    /// A name for this device, shown in the session list.
    #[oai(validator(max_length = 100))]
    device_name: Option<String>,
    /// A challenge from `POST /v1/auth/challenge`; needed after repeated failures.
    challenge: Option<ChallengeField>,
    /// The solution of `challenge`.
    nonce: Option<NonceField>,
    /// The CAPTCHA widget's response token, when `POST /v1/auth/challenge` names a CAPTCHA.
    captcha: Option<CaptchaField>,
}

/// The challenge answer a request carries, if any.
pub(super) fn solution(
    challenge: Option<ChallengeField>,
    nonce: Option<NonceField>,
    captcha: Option<CaptchaField>,
) -> Option<ChallengeSolution> {
    match (challenge, nonce, captcha) {
        (_, _, Some(c)) => Some(ChallengeSolution::Captcha(c.into_inner())),
        (Some(challenge), Some(nonce), None) => {
            Some(ChallengeSolution::Pow { challenge: challenge.into_inner(), nonce: nonce.into_inner() })
        }
        _ => None,
    }
}

/// A challenge to solve: a proof of work (`kind` = `pow`) or a CAPTCHA to show
/// (`turnstile`, `hcaptcha`, `recaptcha`).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ChallengeResponse {
    /// `pow`, `turnstile`, `hcaptcha` or `recaptcha`.
    kind: String,
    /// Proof of work: opaque string to solve; send it back unchanged with the login.
    #[oai(skip_serializing_if_is_none)]
    challenge: Option<String>,
    /// Proof of work: leading zero bits the SHA-256 digest must have.
    #[oai(skip_serializing_if_is_none)]
    difficulty: Option<u8>,
    /// Proof of work: `sha256-leading-zero-bits`.
    #[oai(skip_serializing_if_is_none)]
    algorithm: Option<String>,
    /// Proof of work: RFC 3339 UTC; request a new challenge after this.
    #[oai(skip_serializing_if_is_none)]
    expires_at: Option<String>,
    /// CAPTCHA: the public site key for the widget; send its response token as `captcha`.
    #[oai(skip_serializing_if_is_none)]
    site_key: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct RefreshRequest {
    /// The refresh token. Leave it out only in cookie mode, where the refresh cookie carries it;
    /// with neither, the answer is 401 `invalid_refresh_token`.
    refresh_token: Option<TokenField>,
}

pub(super) type TokenReply = poem_openapi::payload::Response<Json<TokenResponse>>;
type DoneReply = poem_openapi::payload::Response<NoContent>;

/// The token response, with cookies in cookie mode (and tokens left out of the body there).
pub(super) fn token_reply(svc: &AuthService, pair: TokenPair) -> TokenReply {
    let (cookies, body) = token_parts(svc, pair);
    cookies.into_iter().fold(poem_openapi::payload::Response::new(Json(body)), |r, c| r.header("Set-Cookie", c))
}

/// The cookies to set and the body of a token answer.
pub(super) fn token_parts(svc: &AuthService, pair: TokenPair) -> (Vec<String>, TokenResponse) {
    let t = &svc.config().tokens;
    let cookies = if t.transport.uses_cookies() { CookieNames::for_config(t).set(t, &pair) } else { Vec::new() };
    let mut body = TokenResponse::from(pair);
    if t.transport == TokenTransport::Cookie {
        body.refresh_token = None;
        if t.access_cookie {
            body.access_token = None;
        }
    }
    (cookies, body)
}

/// The client's `Accept-Language`, for the language of messages.
pub(super) fn accept_language(req: &Request) -> Option<String> {
    req.header("accept-language").map(|v| v.chars().take(200).collect())
}

/// 204, clearing the auth cookies in cookie mode.
fn done_reply(svc: &AuthService) -> DoneReply {
    let t = &svc.config().tokens;
    let cookies = if t.transport.uses_cookies() { CookieNames::for_config(t).clear() } else { Vec::new() };
    cookies.into_iter().fold(poem_openapi::payload::Response::new(NoContent::Done), |r, c| r.header("Set-Cookie", c))
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct LogoutRequest {
    /// Also end the session of this refresh token (if it is yours).
    refresh_token: Option<TokenField>,
}

/// The new account; without a password, also the token that enrols its first passkey.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RegisteredResponse {
    #[oai(flatten)]
    user: UserResponse,
    /// Without a password: a token (`Authorization: Bearer`) that may only call
    /// `POST /v1/me/passkeys/register` and `/register/finish`, once, within
    /// `passkeys.enrolment_ttl`.
    enrolment_token: Option<String>,
}

#[derive(ApiResponse)]
enum RegisterResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<RegisteredResponse>),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(prefix_path = "/v1/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// A taken username gives 409 `conflict`; so does a taken email or phone while its
    /// verification is off. With verification on, a taken address answers exactly like a new
    /// account (its owner gets a mail instead), and a confirmation goes to the address.
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<RegisterRequest>,
    ) -> Result<RegisterResponse, ApiError> {
        let b = body.0;
        let account = NewAccount {
            email: b.email.map(Bounded::into_inner),
            phone: b.phone.map(Bounded::into_inner),
            username: b.username.map(Bounded::into_inner),
            password: b.password.map(|p| p.0),
            roles: Vec::new(),
            locale: b.locale,
        };
        let (user, enrolment_token) = svc.accounts.register(account, accept_language(req).as_deref()).await?;
        Ok(RegisterResponse::Created(Json(RegisteredResponse { user: user.into(), enrolment_token })))
    }

    /// Sign in
    ///
    /// An unknown account and a wrong password both give 401 `invalid_credentials`, in similar
    /// time, and so does a correct password while a required confirmation is missing (a taken
    /// address must not be told from one just registered). Only after a correct password: a
    /// disabled account gives 403 `account_disabled`; an account with a second factor, 401 `mfa_required` with an
    /// `mfa_token` for `POST /v1/auth/login/mfa`; a role that requires a second factor the
    /// account lacks, 403 `mfa_enrolment_required` with an `mfa_token` for
    /// `POST /v1/auth/mfa/enrol`. Tokens carry `amr` and `auth_time`.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<LoginRequest>,
    ) -> Result<TokenReply, ApiError> {
        let b = body.0;
        let solution = solution(b.challenge, b.nonce, b.captcha);
        let pair = svc.sessions.login(&b.login, &b.password.0, b.device_name, client_info(req), solution).await?;
        Ok(token_reply(&svc, pair))
    }

    /// Get a proof-of-work challenge
    ///
    /// After repeated failed logins on an account (or from an address) a login must carry a
    /// solved challenge (401 `challenge_required` tells). To solve one, find a decimal string
    /// `nonce` (at most 32 digits) such that SHA-256 of the UTF-8 bytes `<challenge>:<nonce>`
    /// begins with `difficulty` zero bits; try `0`, `1`, `2`, … in order. At the default
    /// difficulty (16) that takes about 65,000 hashes, well under a second in a browser. Send
    /// `challenge` and `nonce` with the login. Each challenge works once and expires.
    /// Reference solver: `authd challenge solve <challenge>`.
    #[oai(path = "/challenge", method = "post", operation_id = "new_challenge")]
    async fn challenge(&self, svc: Data<&Arc<AuthService>>) -> Json<ChallengeResponse> {
        Json(match svc.new_challenge() {
            ChallengeOffer::Pow(c) => ChallengeResponse {
                kind: "pow".into(),
                challenge: Some(c.challenge),
                difficulty: Some(c.difficulty),
                algorithm: Some("sha256-leading-zero-bits".into()),
                expires_at: Some(rfc3339(c.expires_at)),
                site_key: None,
            },
            ChallengeOffer::Captcha { kind, site_key } => ChallengeResponse {
                kind: kind.into(),
                challenge: None,
                difficulty: None,
                algorithm: None,
                expires_at: None,
                site_key,
            },
        })
    }

    /// Exchange a refresh token for a new token pair
    ///
    /// The refresh token is single use. Presenting a used one again gives 401
    /// `refresh_token_reused` and ends the whole session (RFC 9700 §4.14.2); so does 401
    /// `second_factor_required` for a session opened without a second factor once a role of the
    /// user requires one. In cookie mode the body may be left out: the refresh cookie is used,
    /// and the request must then echo the CSRF cookie in `X-CSRF-Token` (403 `csrf_failed`
    /// otherwise).
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<Option<RefreshRequest>>,
    ) -> Result<TokenReply, ApiError> {
        let tokens = &svc.config().tokens;
        let token = match body.0.and_then(|b| b.refresh_token).map(Bounded::into_inner) {
            Some(t) => t,
            None if tokens.transport.uses_cookies() => {
                let names = CookieNames::for_config(tokens);
                let t = read_cookie(req, names.refresh).filter(|t| !t.is_empty()).ok_or(Error::InvalidRefreshToken)?;
                check_csrf(req, &names)?;
                t
            }
            // No refresh token at all is a missing credential, as in cookie mode.
            None => return Err(Error::InvalidRefreshToken.into()),
        };
        let pair = svc.sessions.refresh(&token, client_info(req)).await?;
        Ok(token_reply(&svc, pair))
    }

    /// Sign out this session
    ///
    /// The access token is refused from the next request on; the session's refresh token stops
    /// working. The body is optional.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
        body: JsonBody<Option<LogoutRequest>>,
    ) -> Result<DoneReply, ApiError> {
        let refresh = body.0.and_then(|b| b.refresh_token);
        svc.sessions.logout(&auth.0, refresh.as_deref()).await?;
        Ok(done_reply(&svc))
    }

    /// Sign out everywhere
    ///
    /// Every session of the user ends and every access token issued so far is refused.
    #[oai(path = "/logout-all", method = "post", operation_id = "logout_all")]
    async fn logout_all(&self, svc: Data<&Arc<AuthService>>, auth: Caller) -> Result<DoneReply, ApiError> {
        svc.sessions.logout_all(auth.0.user_id).await?;
        Ok(done_reply(&svc))
    }
}
