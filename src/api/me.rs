//! `/v1/me*`: the signed-in user, their devices and password.

use super::fields::{Bounded, CaptchaField, ChallengeField, EmailField, NonceField, PhoneField};
use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json, types::Password};
use uuid::Uuid;

use super::{
    auth_scheme::Caller,
    body::JsonBody,
    client::client_info,
    problem::ApiError,
    views::{ApiTags, AuditEventResponse, SessionResponse, UserResponse},
};
use crate::service::{AuthService, MeChange};

pub struct MeApi;

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ChangePasswordRequest {
    #[oai(validator(max_length = 4096))]
    current_password: Password,
    #[oai(validator(max_length = 4096))]
    new_password: Password,
    /// After repeated failures: a challenge from `POST /v1/auth/challenge` …
    challenge: Option<ChallengeField>,
    /// … and its solution,
    nonce: Option<NonceField>,
    /// or the CAPTCHA widget's response token.
    captcha: Option<CaptchaField>,
}

/// What to change; fields left out stay as they are.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct UpdateMeRequest {
    /// The name to go by (at most 100 characters); `""` clears it.
    #[oai(validator(max_length = 400))]
    name: Option<String>,
    /// A new email. With email verification on, it takes effect once confirmed (a link and code
    /// go to it, and a notice to the old one). Needs a recent sign-in.
    email: Option<EmailField>,
    /// A new phone number, in international form; confirmed by SMS when verification is on.
    /// Needs a recent sign-in.
    phone: Option<PhoneField>,
    /// The language of messages: `en` or `ru`.
    #[oai(validator(max_length = 8))]
    locale: Option<String>,
    /// Whether to be told of logins from new devices.
    new_device_notices: Option<bool>,
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(prefix_path = "/v1/me", tag = "ApiTags::Me")]
impl MeApi {
    /// The signed-in user
    #[oai(path = "/", method = "get", operation_id = "me")]
    async fn me(&self, svc: Data<&Arc<AuthService>>, auth: Caller) -> Result<Json<UserResponse>, ApiError> {
        Ok(Json(svc.accounts.user_profile(auth.0.user_id).await?.as_ref().into()))
    }

    /// Change the signed-in user's contacts or preferences
    ///
    /// A new email or phone needs a sign-in newer than `security.step_up_window` (401
    /// `step_up_required`). A taken address gives 409 `conflict` when verification is off;
    /// with verification on, the confirmation fails instead, so nobody learns who holds it.
    #[oai(path = "/", method = "patch", operation_id = "update_me")]
    async fn update(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
        body: JsonBody<UpdateMeRequest>,
    ) -> Result<Json<UserResponse>, ApiError> {
        let b = body.0;
        let change = MeChange {
            name: b.name,
            email: b.email.map(Bounded::into_inner),
            phone: b.phone.map(Bounded::into_inner),
            locale: b.locale,
            new_device_notices: b.new_device_notices,
        };
        Ok(Json(svc.verification.update_me(&auth.0, change).await?.into()))
    }

    /// The user's own recent security events (logins, new devices, password changes), newest first
    #[oai(path = "/events", method = "get", operation_id = "my_events")]
    async fn events(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
    ) -> Result<Json<Vec<AuditEventResponse>>, ApiError> {
        let events = svc.audit.mine(auth.0.user_id, 50).await?;
        Ok(Json(events.into_iter().map(Into::into).collect()))
    }

    /// The user's sessions (devices), newest first
    #[oai(path = "/sessions", method = "get", operation_id = "list_my_sessions")]
    async fn sessions(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
    ) -> Result<Json<Vec<SessionResponse>>, ApiError> {
        let current = auth.0.session_id;
        let sessions = svc.sessions.list_sessions(auth.0.user_id).await?;
        Ok(Json(sessions.into_iter().map(|s| SessionResponse::new(s, current)).collect()))
    }

    /// Sign one device out
    ///
    /// Its tokens are refused from now on. Another user's session id gives 404.
    #[oai(path = "/sessions/:id", method = "delete", operation_id = "revoke_my_session")]
    async fn revoke_session(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        svc.sessions.revoke_session(auth.0.user_id, id.0).await?;
        Ok(NoContent::Done)
    }

    /// The applications the user allowed to sign them in
    #[oai(path = "/consents", method = "get", operation_id = "list_my_consents")]
    async fn consents(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
    ) -> Result<Json<Vec<ConsentResponse>>, ApiError> {
        let list = svc.provider.consents(auth.0.user_id).await?;
        Ok(Json(
            list.into_iter()
                .map(|(c, name)| ConsentResponse {
                    client_id: c.client_id,
                    client_name: name,
                    scopes: c.scopes,
                    granted_at: crate::model::rfc3339(c.at),
                })
                .collect(),
        ))
    }

    /// Take back an application's access
    ///
    /// Its sessions of this user end, and its next sign-in asks for consent again. 404 when the
    /// user never allowed it.
    #[oai(path = "/consents/:client_id", method = "delete", operation_id = "revoke_my_consent")]
    async fn revoke_consent(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
        client_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        svc.provider.revoke_consent(auth.0.user_id, client_id.0).await?;
        Ok(NoContent::Done)
    }

    /// Change the password
    ///
    /// Needs the current password (403 `invalid_current_password` otherwise). Every other
    /// session ends; this one stays signed in.
    #[oai(path = "/password", method = "post", operation_id = "change_password")]
    async fn change_password(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        auth: Caller,
        body: JsonBody<ChangePasswordRequest>,
    ) -> Result<NoContent, ApiError> {
        let b = body.0;
        let solution = super::auth::solution(b.challenge, b.nonce, b.captcha);
        svc.sessions
            .change_password(&auth.0, &b.current_password.0, &b.new_password.0, client_info(req).ip, solution)
            .await?;
        Ok(NoContent::Done)
    }
}

/// An application the user allowed.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ConsentResponse {
    client_id: Uuid,
    /// Absent when the client has since been removed.
    #[oai(skip_serializing_if_is_none)]
    client_name: Option<String>,
    scopes: Vec<String>,
    granted_at: String,
}
