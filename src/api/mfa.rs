//! Two-factor login and enrolment: `/v1/auth/login/mfa`, `/v1/auth/mfa/*`, `/v1/me/mfa/*`.

use super::fields::TokenField;
use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, types::Password};

use super::{
    auth::{TokenReply, token_parts, token_reply},
    auth_scheme::Caller,
    body::JsonBody,
    client::client_info,
    problem::ApiError,
    views::{ApiTags, TokenResponse},
};
use crate::{
    error::{Error, FieldError},
    service::{AuthService, SecondFactor, TotpEnrolment},
};

pub struct MfaApi;

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct MfaLoginRequest {
    /// From the `mfa_required` answer of `POST /v1/auth/login`.
    mfa_token: TokenField,
    /// The 6-digit code of the authenticator …
    #[oai(validator(pattern = r"^[0-9]{6}$"))]
    code: Option<String>,
    /// … or one of the recovery codes (each works once).
    #[oai(validator(max_length = 32))]
    recovery_code: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct EnrolRequest {
    /// From the `mfa_enrolment_required` answer of `POST /v1/auth/login`.
    mfa_token: TokenField,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct EnrolConfirmRequest {
    mfa_token: TokenField,
    /// The authenticator's current 6-digit code.
    #[oai(validator(pattern = r"^[0-9]{6}$"))]
    code: String,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct CodeRequest {
    /// The authenticator's current 6-digit code.
    #[oai(validator(pattern = r"^[0-9]{6}$"))]
    code: String,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct DisableRequest {
    #[oai(validator(max_length = 4096))]
    password: Password,
    #[oai(validator(pattern = r"^[0-9]{6}$"))]
    code: Option<String>,
    #[oai(validator(max_length = 32))]
    recovery_code: Option<String>,
}

/// A TOTP secret to load into an authenticator app; shown once.
#[derive(Object)]
struct TotpEnrolmentResponse {
    /// Base32, for typing by hand.
    secret: String,
    /// `otpauth://totp/…` (SHA-1, 6 digits, 30 s).
    otpauth_uri: String,
    /// The URI as a QR code (SVG).
    qr_svg: String,
}

impl From<TotpEnrolment> for TotpEnrolmentResponse {
    fn from(e: TotpEnrolment) -> Self {
        Self { secret: e.secret, otpauth_uri: e.otpauth_uri, qr_svg: e.qr_svg }
    }
}

/// Single-use recovery codes; shown once, stored hashed.
#[derive(Object)]
struct RecoveryCodesResponse {
    recovery_codes: Vec<String>,
}

/// Tokens of the login the enrolment finished, and the recovery codes.
#[derive(Object)]
struct EnrolledResponse {
    recovery_codes: Vec<String>,
    tokens: TokenResponse,
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

type EnrolledReply = poem_openapi::payload::Response<Json<EnrolledResponse>>;

fn factor(code: Option<String>, recovery_code: Option<String>) -> Result<SecondFactor, Error> {
    match (code, recovery_code) {
        (Some(c), None) => Ok(SecondFactor::Totp(c)),
        (None, Some(r)) => Ok(SecondFactor::Recovery(r)),
        _ => Err(Error::Malformed(vec![FieldError::new(
            "code",
            "required",
            "send exactly one of `code` and `recovery_code`",
        )])),
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl MfaApi {
    /// Finish a login with a second factor
    ///
    /// After 401 `mfa_required`: the `mfa_token` with a TOTP `code` or a `recovery_code`. A
    /// code is never accepted twice; wrong ones give 401 `invalid_mfa_code`, count toward the
    /// account's failed-login budget, and after five the token is burned (401
    /// `invalid_mfa_token`: sign in again).
    #[oai(path = "/v1/auth/login/mfa", method = "post", operation_id = "login_mfa")]
    async fn login_mfa(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<MfaLoginRequest>,
    ) -> Result<TokenReply, ApiError> {
        let b = body.0;
        let f = factor(b.code, b.recovery_code)?;
        let pair = svc.factors.login_mfa(&b.mfa_token, f, client_info(req)).await?;
        Ok(token_reply(&svc, pair))
    }

    /// Start enrolling a second factor during login
    ///
    /// After 403 `mfa_enrolment_required` (a role of the account requires a second factor): the
    /// `mfa_token` gets a TOTP secret; nothing else.
    #[oai(path = "/v1/auth/mfa/enrol", method = "post", operation_id = "mfa_enrol")]
    async fn enrol(
        &self,
        svc: Data<&Arc<AuthService>>,
        body: JsonBody<EnrolRequest>,
    ) -> Result<Json<TotpEnrolmentResponse>, ApiError> {
        Ok(Json(svc.factors.begin_totp_enrolment(&body.0.mfa_token).await?.into()))
    }

    /// Finish enrolling during login
    ///
    /// A first code turns the factor on and completes the login: the tokens (cookies in cookie
    /// mode) and the recovery codes, shown once.
    #[oai(path = "/v1/auth/mfa/enrol/confirm", method = "post", operation_id = "mfa_enrol_confirm")]
    async fn enrol_confirm(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<EnrolConfirmRequest>,
    ) -> Result<EnrolledReply, ApiError> {
        let b = body.0;
        let (pair, codes) = svc.factors.confirm_totp_enrolment(&b.mfa_token, &b.code, client_info(req)).await?;
        let (cookies, tokens) = token_parts(&svc, pair);
        let body = EnrolledResponse { recovery_codes: codes, tokens };
        Ok(cookies.into_iter().fold(poem_openapi::payload::Response::new(Json(body)), |r, c| r.header("Set-Cookie", c)))
    }

    /// Start enrolling TOTP
    ///
    /// Needs a sign-in newer than `security.step_up_window` (401 `step_up_required`
    /// otherwise). Returns the secret, an `otpauth://` URI and a QR code; the factor is on only
    /// after `POST /v1/me/mfa/totp/confirm`.
    #[oai(path = "/v1/me/mfa/totp", method = "post", operation_id = "totp_begin", tag = "ApiTags::Me")]
    async fn begin(&self, svc: Data<&Arc<AuthService>>, auth: Caller) -> Result<Json<TotpEnrolmentResponse>, ApiError> {
        Ok(Json(svc.factors.begin_totp(&auth.0).await?.into()))
    }

    /// Turn TOTP on
    ///
    /// With the authenticator's current code. Returns 10 recovery codes, shown once.
    #[oai(path = "/v1/me/mfa/totp/confirm", method = "post", operation_id = "totp_confirm", tag = "ApiTags::Me")]
    async fn confirm(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
        body: JsonBody<CodeRequest>,
    ) -> Result<Json<RecoveryCodesResponse>, ApiError> {
        let codes = svc.factors.confirm_totp(&auth.0, &body.0.code).await?;
        Ok(Json(RecoveryCodesResponse { recovery_codes: codes }))
    }

    /// Turn TOTP off
    ///
    /// Needs the password and a current code (or a recovery code).
    #[oai(path = "/v1/me/mfa/totp", method = "delete", operation_id = "totp_disable", tag = "ApiTags::Me")]
    async fn disable(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        auth: Caller,
        body: JsonBody<DisableRequest>,
    ) -> Result<NoContent, ApiError> {
        let b = body.0;
        let f = factor(b.code, b.recovery_code)?;
        svc.factors.disable_totp(&auth.0, &b.password.0, f, client_info(req).ip).await?;
        Ok(NoContent::Done)
    }
}
