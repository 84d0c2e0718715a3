//! Passkeys: `/v1/me/passkeys*` (enrolment and the user's list) and `/v1/auth/passkey*`
//! (sign-in without an account name). WebAuthn JSON passes through as the browser makes it.

use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json, types::Any};
use serde_json::Value;
use uuid::Uuid;

use super::{
    auth::{TokenReply, token_reply},
    auth_scheme::{Caller, EnrolCaller},
    body::JsonBody,
    client::client_info,
    fields::TokenField,
    problem::ApiError,
    views::ApiTags,
};
use crate::{
    model::{Passkey, rfc3339},
    service::AuthService,
};

pub struct PasskeysApi;

/// Nothing: the caller is the one enrolling.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct Empty {}

/// A ceremony under way and the options to give the browser's WebAuthn call.
#[derive(Object)]
struct CeremonyResponse {
    /// Opaque; send it back with the authenticator's answer, once, within
    /// `passkeys.ceremony_ttl`.
    ceremony: String,
    /// `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`: give it
    /// to `PublicKeyCredential.parseCreationOptionsFromJSON()` / `parseRequestOptionsFromJSON()`.
    public_key: Any<Value>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct RegisterFinishRequest {
    ceremony: TokenField,
    /// What `credential.toJSON()` returns after `navigator.credentials.create()`.
    credential: Any<Value>,
    /// The user's name for it (1–64 characters; default `Passkey`).
    #[oai(validator(max_length = 256))]
    name: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct SignInFinishRequest {
    ceremony: TokenField,
    /// What `credential.toJSON()` returns after `navigator.credentials.get()`.
    credential: Any<Value>,
    /// A name for this device, shown in the session list.
    #[oai(validator(max_length = 256))]
    device_name: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct RenameRequest {
    /// 1–64 characters.
    #[oai(validator(min_length = 1, max_length = 256))]
    name: String,
}

/// A passkey of the user's.
#[derive(Object)]
struct PasskeyResponse {
    id: Uuid,
    name: String,
    /// RFC 3339 UTC.
    created_at: String,
    /// RFC 3339 UTC; absent until it signs in once.
    last_used_at: Option<String>,
    /// Whether it is synced to other devices (backed up).
    backed_up: bool,
    /// Only with the first passkey of an account that had none: single-use recovery codes,
    /// shown once. Keep them: they are a way back in if every passkey is lost.
    #[oai(skip_serializing_if_is_none)]
    recovery_codes: Option<Vec<String>>,
}

impl From<&Passkey> for PasskeyResponse {
    fn from(p: &Passkey) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            created_at: rfc3339(p.created_at),
            last_used_at: (p.last_used_at > 0).then(|| rfc3339(p.last_used_at)),
            backed_up: p.backed_up,
            recovery_codes: None,
        }
    }
}

#[derive(Object)]
struct PasskeyList {
    items: Vec<PasskeyResponse>,
}

#[derive(ApiResponse)]
enum Created {
    /// Stored.
    #[oai(status = 201)]
    Created(Json<PasskeyResponse>),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(tag = "ApiTags::Me")]
impl PasskeysApi {
    /// Start enrolling a passkey
    ///
    /// Signed in within `security.step_up_window` (401 `step_up_required` otherwise), or with
    /// an `enrolment_token` (a passwordless sign-up, a recovery) or the `mfa_token` of a login a
    /// role sends to enrolment, as the bearer. Returns `PublicKeyCredentialCreationOptionsJSON`
    /// (a discoverable credential with user verification; the account's passkeys excluded).
    #[oai(path = "/v1/me/passkeys/register", method = "post", operation_id = "passkey_register_begin")]
    async fn register(
        &self,
        svc: Data<&Arc<AuthService>>,
        who: EnrolCaller,
        _body: JsonBody<Empty>,
    ) -> Result<Json<CeremonyResponse>, ApiError> {
        let (ceremony, options) = svc.passkeys.begin_registration(&who.0).await?;
        Ok(Json(CeremonyResponse { ceremony, public_key: Any(options) }))
    }

    /// Finish enrolling a passkey
    ///
    /// The authenticator's answer, checked against the ceremony (origin, challenge, user
    /// verification). An enrolment token is spent by it. Enrolling through a recovery ends
    /// every other session and tells the user on every proven channel. 422 `passkey_rejected`
    /// says why an answer was refused; 400 `invalid_ceremony` for a ceremony unknown, spent
    /// or expired.
    #[oai(path = "/v1/me/passkeys/register/finish", method = "post", operation_id = "passkey_register_finish")]
    async fn register_finish(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        who: EnrolCaller,
        body: JsonBody<RegisterFinishRequest>,
    ) -> Result<Created, ApiError> {
        let b = body.0;
        let (passkey, codes) = svc
            .passkeys
            .finish_registration(&who.0, &b.ceremony, b.credential.0, b.name.as_deref(), client_info(req))
            .await?;
        let mut view = PasskeyResponse::from(&passkey);
        view.recovery_codes = (!codes.is_empty()).then_some(codes);
        Ok(Created::Created(Json(view)))
    }

    /// List my passkeys
    #[oai(path = "/v1/me/passkeys", method = "get", operation_id = "passkeys_list")]
    async fn list(&self, svc: Data<&Arc<AuthService>>, auth: Caller) -> Result<Json<PasskeyList>, ApiError> {
        let items = svc.passkeys.list(auth.0.user_id).await?;
        Ok(Json(PasskeyList { items: items.iter().map(PasskeyResponse::from).collect() }))
    }

    /// Rename a passkey
    #[oai(path = "/v1/me/passkeys/:id", method = "patch", operation_id = "passkey_rename")]
    async fn rename(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
        id: Path<Uuid>,
        body: JsonBody<RenameRequest>,
    ) -> Result<Json<PasskeyResponse>, ApiError> {
        let p = svc.passkeys.rename(&auth.0, id.0, &body.0.name).await?;
        Ok(Json(PasskeyResponse::from(&p)))
    }

    /// Remove a passkey
    ///
    /// Needs a recent sign-in. The last way into the account cannot go: 409
    /// `last_login_method`.
    #[oai(path = "/v1/me/passkeys/:id", method = "delete", operation_id = "passkey_remove")]
    async fn remove(&self, svc: Data<&Arc<AuthService>>, auth: Caller, id: Path<Uuid>) -> Result<NoContent, ApiError> {
        svc.passkeys.remove(&auth.0, id.0).await?;
        Ok(NoContent::Done)
    }

    /// Start signing in with a passkey
    ///
    /// No account name: `PublicKeyCredentialRequestOptionsJSON` with an empty
    /// `allowCredentials`, so the authenticator offers the accounts it holds (also as browser
    /// autofill, with `mediation: "conditional"`).
    #[oai(path = "/v1/auth/passkey", method = "post", operation_id = "passkey_sign_in_begin", tag = "ApiTags::Auth")]
    async fn sign_in(
        &self,
        svc: Data<&Arc<AuthService>>,
        _body: JsonBody<Empty>,
    ) -> Result<Json<CeremonyResponse>, ApiError> {
        let (ceremony, options) = svc.passkeys.begin_sign_in().await?;
        Ok(Json(CeremonyResponse { ceremony, public_key: Any(options) }))
    }

    /// Finish signing in with a passkey
    ///
    /// The same answer as a password login. The passkey verified its user, so the tokens'
    /// `amr` holds `pop` and `hwk` (a device-bound key) or `swk` (a synced one), and the login
    /// satisfies a role's `require_mfa`. Anything wrong (an unknown credential, a user handle
    /// that is not the credential's, a sign count that went backwards) gives 401
    /// `invalid_passkey`.
    #[oai(
        path = "/v1/auth/passkey/finish",
        method = "post",
        operation_id = "passkey_sign_in_finish",
        tag = "ApiTags::Auth"
    )]
    async fn sign_in_finish(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<SignInFinishRequest>,
    ) -> Result<TokenReply, ApiError> {
        let b = body.0;
        let pair = svc.passkeys.finish_sign_in(&b.ceremony, b.credential.0, b.device_name, client_info(req)).await?;
        Ok(token_reply(&svc, pair))
    }
}
