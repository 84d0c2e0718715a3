//! `/v1/auth/*`: register, login, refresh, logout.

use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, types::Password};

use super::{
    auth_scheme::BearerAuth,
    client::client_info,
    problem::ApiError,
    views::{ApiTags, TokenResponse, UserResponse},
};
use crate::{
    model::rfc3339,
    service::{AuthService, ChallengeSolution, NewAccount},
};

pub struct AuthApi;

/// At least one of `email` and `phone`; `username` optional.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct RegisterRequest {
    /// Email address; compared case-insensitively.
    #[oai(validator(max_length = 254))]
    email: Option<String>,
    /// Phone number in international form, e.g. `+14155552671`.
    #[oai(validator(max_length = 32))]
    phone: Option<String>,
    /// 3–32 characters of `a-z 0-9 . _ -`.
    #[oai(validator(max_length = 64))]
    username: Option<String>,
    /// 8–256 characters; very common passwords are refused.
    #[oai(validator(max_length = 4096))]
    password: Password,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct LoginRequest {
    /// Email, phone number or username.
    #[oai(validator(max_length = 254))]
    login: String,
    #[oai(validator(max_length = 4096))]
    password: Password,
    /// A name for this device, shown in the session list.
    #[oai(validator(max_length = 100))]
    device_name: Option<String>,
    /// A challenge from `POST /v1/auth/challenge`; needed after repeated failures.
    #[oai(validator(max_length = 256))]
    challenge: Option<String>,
    /// The solution of `challenge`.
    #[oai(validator(max_length = 32))]
    nonce: Option<String>,
}

/// A proof-of-work challenge.
#[derive(Object)]
struct ChallengeResponse {
    /// Opaque string to solve; send it back unchanged with the login.
    challenge: String,
    /// Leading zero bits the SHA-256 digest must have.
    difficulty: u8,
    /// `sha256-leading-zero-bits`.
    algorithm: String,
    /// RFC 3339 UTC; request a new challenge after this.
    expires_at: String,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct RefreshRequest {
    #[oai(validator(max_length = 512))]
    refresh_token: String,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct LogoutRequest {
    /// Also end the session of this refresh token (if it is yours).
    #[oai(validator(max_length = 512))]
    refresh_token: Option<String>,
}

#[derive(ApiResponse)]
enum RegisterResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<UserResponse>),
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
    /// A taken email, phone or username gives 409 `conflict`.
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        svc: Data<&Arc<AuthService>>,
        body: Json<RegisterRequest>,
    ) -> Result<RegisterResponse, ApiError> {
        let b = body.0;
        let user = svc
            .register(NewAccount {
                email: b.email,
                phone: b.phone,
                username: b.username,
                password: Some(b.password.0),
                roles: Vec::new(),
            })
            .await?;
        Ok(RegisterResponse::Created(Json(user.into())))
    }

    /// Sign in
    ///
    /// An unknown account and a wrong password both give 401 `invalid_credentials`, in similar
    /// time. A disabled account gives 403 `account_disabled`, only after a correct password.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let b = body.0;
        let solution = match (b.challenge, b.nonce) {
            (Some(challenge), Some(nonce)) => Some(ChallengeSolution { challenge, nonce }),
            _ => None,
        };
        let pair = svc.login(&b.login, &b.password.0, b.device_name, client_info(req), solution).await?;
        Ok(Json(pair.into()))
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
        let c = svc.new_challenge();
        Json(ChallengeResponse {
            challenge: c.challenge,
            difficulty: c.difficulty,
            algorithm: "sha256-leading-zero-bits".into(),
            expires_at: rfc3339(c.expires_at),
        })
    }

    /// Exchange a refresh token for a new token pair
    ///
    /// The refresh token is single use. Presenting a used one again gives 401
    /// `refresh_token_reused` and ends the whole session (RFC 9700 §4.14.2).
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let pair = svc.refresh(&body.0.refresh_token, client_info(req)).await?;
        Ok(Json(pair.into()))
    }

    /// Sign out this session
    ///
    /// The access token is refused from the next request on; the session's refresh token stops
    /// working. The body is optional.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: BearerAuth,
        body: Json<Option<LogoutRequest>>,
    ) -> Result<NoContent, ApiError> {
        let refresh = body.0.and_then(|b| b.refresh_token);
        svc.logout(&auth.0, refresh.as_deref()).await?;
        Ok(NoContent::Done)
    }

    /// Sign out everywhere
    ///
    /// Every session of the user ends and every access token issued so far is refused.
    #[oai(path = "/logout-all", method = "post", operation_id = "logout_all")]
    async fn logout_all(&self, svc: Data<&Arc<AuthService>>, auth: BearerAuth) -> Result<NoContent, ApiError> {
        svc.logout_all(auth.0.user_id).await?;
        Ok(NoContent::Done)
    }
}
