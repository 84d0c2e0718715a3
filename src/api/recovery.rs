//! `/v1/auth/verify*` and `/v1/auth/password/*`: confirming contacts, resetting a password.

use super::fields::{Bounded, EmailField, LoginField, PhoneField, TokenField};
use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, types::Password};

use super::client::client_info;
use super::{auth::accept_language, body::JsonBody, problem::ApiError, views::ApiTags};
use crate::{
    error::{Error, FieldError},
    service::{AuthService, RecoverProof, ResetProof, VerifyProof},
};

pub struct RecoveryApi;

/// The token from a mailed link, or an address with the code sent to it.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct VerifyRequest {
    /// The `token` parameter of the mailed link.
    token: Option<TokenField>,
    /// The address the code was mailed to …
    email: Option<EmailField>,
    /// … or the number it was texted to.
    phone: Option<PhoneField>,
    /// The 6-digit code.
    #[oai(validator(pattern = r"^[0-9]{6}$"))]
    code: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ResendRequest {
    email: Option<EmailField>,
    phone: Option<PhoneField>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ForgotRequest {
    /// Email, phone number or username.
    login: LoginField,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ResetRequest {
    /// The `token` parameter of the mailed link …
    token: Option<TokenField>,
    /// … or the login the code was sent for,
    login: Option<LoginField>,
    /// and the 6-digit code.
    #[oai(validator(pattern = r"^[0-9]{6}$"))]
    code: Option<String>,
    #[oai(validator(max_length = 4096))]
    new_password: Password,
    /// Keep the external accounts (identities) linked before the last proof of a login name
    /// (default `true`). Identities linked since are unlinked either way; `false` unlinks all.
    keep_identities: Option<bool>,
}

/// One of: the link's `token`; `login` with the mailed `code`; `login` with a `recovery_code`.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct RecoverFinishRequest {
    /// The `token` parameter of the mailed link, or of an operator's link …
    token: Option<TokenField>,
    /// … or the login the code was sent for (or whose recovery code this is),
    login: Option<LoginField>,
    /// and the 6-digit code of the message …
    #[oai(validator(pattern = r"^[0-9]{6}$"))]
    code: Option<String>,
    /// … or one of the account's recovery codes.
    #[oai(validator(max_length = 32))]
    recovery_code: Option<String>,
    /// With `token` or `code`, when the account has an authenticator app (401
    /// `factor_required` tells): its current code, or a recovery code.
    #[oai(validator(max_length = 32))]
    factor: Option<String>,
}

/// A token that may only enrol one passkey.
#[derive(Object)]
struct EnrolmentTokenResponse {
    /// Send it as `Authorization: Bearer` to `POST /v1/me/passkeys/register` and
    /// `/register/finish`; the finish spends it.
    enrolment_token: String,
    /// Seconds it works for.
    expires_in: u64,
}

/// The same answer whatever happened.
#[derive(Object)]
struct Accepted {
    /// What happens next.
    detail: String,
}

#[derive(ApiResponse)]
enum AcceptedReply {
    /// Taken in; if the account exists, a message is on its way.
    #[oai(status = 202)]
    Accepted(Json<Accepted>),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

fn accepted() -> AcceptedReply {
    AcceptedReply::Accepted(Json(Accepted {
        detail: "If an account matches, a message with a link and a code is on its way.".into(),
    }))
}

fn code_needs(field: &str) -> Error {
    Error::Malformed(vec![FieldError::new(field, "required", format!("`code` needs `{field}`, and the reverse"))])
}

#[OpenApi(prefix_path = "/v1/auth", tag = "ApiTags::Auth")]
impl RecoveryApi {
    /// Confirm an email address or phone number
    ///
    /// Send the `token` of a mailed link, or `email` (or `phone`) with the 6-digit `code`. A
    /// wrong, used or unknown one gives 422 `invalid_code`, an expired one 422 `code_expired`;
    /// five wrong codes burn it. A confirmed new email replaces the old one only now.
    #[oai(path = "/verify", method = "post", operation_id = "verify_contact")]
    async fn verify(&self, svc: Data<&Arc<AuthService>>, body: JsonBody<VerifyRequest>) -> Result<NoContent, ApiError> {
        let b = body.0;
        let proof = match (b.token, b.email, b.phone, b.code) {
            (Some(token), None, None, None) => VerifyProof::Token(token.into_inner()),
            (None, Some(email), None, Some(code)) => VerifyProof::EmailCode { email: email.into_inner(), code },
            (None, None, Some(phone), Some(code)) => VerifyProof::PhoneCode { phone: phone.into_inner(), code },
            (None, None, None, Some(_)) => return Err(code_needs("email").into()),
            _ => {
                return Err(Error::Malformed(vec![FieldError::new(
                    "token",
                    "required",
                    "send either `token`, or `email` or `phone` with `code`",
                )])
                .into());
            }
        };
        svc.verification.verify_contact(proof).await?;
        Ok(NoContent::Done)
    }

    /// Send a new confirmation
    ///
    /// Always 202 with the same body, whether or not the address has an account awaiting
    /// confirmation. The same address again within `verification.resend_interval` gives 429.
    #[oai(path = "/verify/resend", method = "post", operation_id = "resend_confirmation")]
    async fn resend(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<ResendRequest>,
    ) -> Result<AcceptedReply, ApiError> {
        let b = body.0;
        svc.verification
            .resend_confirmation(
                b.email.map(Bounded::into_inner),
                b.phone.map(Bounded::into_inner),
                accept_language(req),
            )
            .await?;
        Ok(accepted())
    }

    /// Forgot the password
    ///
    /// Always 202 with the same body, at once, whether or not the account exists; if it does, a
    /// single-use link and code (30 minutes) go to its email, or a code to its phone. The same
    /// login again within `verification.resend_interval` gives 429.
    #[oai(path = "/password/forgot", method = "post", operation_id = "forgot_password")]
    async fn forgot(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<ForgotRequest>,
    ) -> Result<AcceptedReply, ApiError> {
        svc.recovery.forgot_password(&body.0.login, accept_language(req)).await?;
        Ok(accepted())
    }

    /// Set a new password with a reset link or code
    ///
    /// Send the link's `token`, or `login` with the `code`, and `new_password`. Every session
    /// ends and every token issued before is refused, and changes awaiting confirmation are
    /// dropped. The name the message reached counts as proven. A bad link or code gives 422
    /// `invalid_code` or `code_expired`, and changes nothing.
    #[oai(path = "/password/reset", method = "post", operation_id = "reset_password")]
    async fn reset(&self, svc: Data<&Arc<AuthService>>, body: JsonBody<ResetRequest>) -> Result<NoContent, ApiError> {
        let b = body.0;
        let proof = match (b.token, b.login, b.code) {
            (Some(token), None, None) => ResetProof::Token(token.into_inner()),
            (None, Some(login), Some(code)) => ResetProof::Code { login: login.into_inner(), code },
            (None, Some(_), None) => return Err(code_needs("code").into()),
            (None, None, Some(_)) => return Err(code_needs("login").into()),
            _ => {
                return Err(Error::Malformed(vec![FieldError::new(
                    "token",
                    "required",
                    "send either `token`, or `login` with `code`",
                )])
                .into());
            }
        };
        svc.recovery.reset_password(proof, &b.new_password.0, b.keep_identities.unwrap_or(true)).await?;
        Ok(NoContent::Done)
    }

    /// Recover an account (lost passkeys)
    ///
    /// Always 202 with the same body, at once, whether or not the account exists. If it does,
    /// one message goes to its proven email (or phone), or to its pending one while none is
    /// proven, with a link to `/ui/recover?token=…` and a code for `POST /v1/auth/recover/finish`:
    /// one secret, so using either burns both. The same login again within
    /// `verification.resend_interval` gives 429.
    #[oai(path = "/recover", method = "post", operation_id = "recover_account")]
    async fn recover(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<ForgotRequest>,
    ) -> Result<AcceptedReply, ApiError> {
        svc.recovery.recover_account(&body.0.login, accept_language(req)).await?;
        Ok(accepted())
    }

    /// Finish a recovery: get a token that enrols a passkey
    ///
    /// Send the link's `token` (a mailed one, or one from `authd user recovery-link`), or
    /// `login` with the mailed `code`, or `login` with one of the account's `recovery_code`s.
    /// The answer's `enrolment_token` enrols one passkey; doing so ends every other session and
    /// tells the user on every proven channel. A mailed proof proves the name it reached. A bad
    /// proof gives 422 `invalid_code` (or `code_expired`) and changes nothing but its budget.
    #[oai(path = "/recover/finish", method = "post", operation_id = "recover_finish")]
    async fn recover_finish(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<RecoverFinishRequest>,
    ) -> Result<Json<EnrolmentTokenResponse>, ApiError> {
        let b = body.0;
        let proof = match (b.token, b.login, b.code, b.recovery_code) {
            (Some(token), None, None, None) => RecoverProof::Token { token: token.into_inner(), factor: b.factor },
            (None, Some(login), Some(code), None) => {
                RecoverProof::Code { login: login.into_inner(), code, factor: b.factor }
            }
            (None, Some(login), None, Some(code)) if b.factor.is_none() => {
                RecoverProof::RecoveryCode { login: login.into_inner(), code }
            }
            // Which fields go together is a rule the schema cannot say: 422, as for a rule.
            _ => {
                return Err(Error::invalid(
                    "token",
                    "required",
                    "send either `token`, or `login` with `code` or `recovery_code` (and `factor` only with \
                     `token` or `code`)",
                )
                .into());
            }
        };
        let t = svc.recovery.finish_recovery(proof, client_info(req).ip).await?;
        Ok(Json(EnrolmentTokenResponse { enrolment_token: t.token, expires_in: t.expires_in }))
    }
}
