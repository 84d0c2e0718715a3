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
use crate::service::{AuthService, NewAccount};

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
        let pair = svc
            .login(&b.login, &b.password.0, b.device_name, client_info(req))
            .await?;
        Ok(Json(pair.into()))
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
    async fn logout_all(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: BearerAuth,
    ) -> Result<NoContent, ApiError> {
        svc.logout_all(auth.0.user_id).await?;
        Ok(NoContent::Done)
    }
}
