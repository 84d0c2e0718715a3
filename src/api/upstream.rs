//! `/v1/auth/providers`, `/v1/auth/oauth/*`, `/v1/me/identities*`: login with external
//! providers and the identities it links.

use super::fields::{Bounded, TokenField};
use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    auth::{TokenReply, token_reply},
    auth_scheme::Caller,
    body::JsonBody,
    client::client_info,
    cookies::read_cookie,
    problem::ApiError,
    views::ApiTags,
};
use crate::{
    model::{Identity, rfc3339},
    service::{AuthService, CallbackParams},
};

pub struct OauthApi;

/// A provider a login page can offer.
#[derive(Object)]
struct ProviderResponse {
    /// Use it in `/v1/auth/oauth/{provider}/start`.
    name: String,
    /// The button's label.
    display_name: String,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ExchangeRequest {
    /// The `code` the login's redirect brought back; works once, for 60 s.
    code: TokenField,
    /// The PKCE verifier (RFC 7636) whose S256 challenge the application gave to `start`: 43 to
    /// 128 characters of `A-Z a-z 0-9 - . _ ~`. Required unless the login started without a
    /// challenge under `oauth.app_pkce = "optional"`. A code without its verifier is spent.
    #[oai(validator(max_length = 128))]
    code_verifier: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct LinkRequest {
    /// Where the browser returns when linking is done (`?linked=<provider>` or `?error=…`);
    /// one of `oauth.allowed_redirects`.
    #[oai(validator(max_length = 2000))]
    redirect_uri: String,
}

/// Where to send the browser to link a provider.
#[derive(Object)]
struct LinkStart {
    authorization_url: String,
}

/// An external account linked to the user.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct IdentityResponse {
    pub id: Uuid,
    pub provider: String,
    /// The provider's id of the account.
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub created_at: String,
    /// RFC 3339 UTC; absent until the first login through it.
    pub last_login_at: Option<String>,
}

impl From<Identity> for IdentityResponse {
    fn from(i: Identity) -> Self {
        Self {
            id: i.id,
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            email_verified: i.email_verified,
            name: i.name,
            created_at: rfc3339(i.created_at),
            last_login_at: (i.last_login_at > 0).then(|| rfc3339(i.last_login_at)),
        }
    }
}

#[derive(ApiResponse)]
enum Found {
    /// Go there.
    #[oai(status = 302)]
    Found(#[oai(header = "Location")] String, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum LinkReply {
    /// Send the browser to `authorization_url`; the cookie carries the flow and binds it there.
    #[oai(status = 200)]
    Ok(Json<LinkStart>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// The cookie that carries a started login, sealed, and so binds it to the browser that
/// started it: `Lax`, since a `Strict` one would not come back with the provider's redirect.
pub(super) fn cookie_name(svc: &AuthService) -> &'static str {
    if svc.public_url().starts_with("https://") { "__Host-authd_oauth" } else { "authd_oauth" }
}

pub(crate) fn login_cookie(svc: &AuthService, value: &str, max_age: u64) -> String {
    let secure = if svc.public_url().starts_with("https://") { "; Secure" } else { "" };
    format!("{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", cookie_name(svc))
}

#[OpenApi(tag = "ApiTags::Auth")]
impl OauthApi {
    /// The enabled login providers
    ///
    /// For drawing a login page's buttons.
    #[oai(path = "/v1/auth/providers", method = "get", operation_id = "list_providers")]
    async fn providers(&self, svc: Data<&Arc<AuthService>>) -> Json<Vec<ProviderResponse>> {
        Json(
            svc.upstream
                .providers()
                .into_iter()
                .map(|p| ProviderResponse { name: p.name, display_name: p.display_name })
                .collect(),
        )
    }

    /// Start a login with a provider
    ///
    /// Answers 302 to the provider (authorization code with PKCE S256, `state` and `nonce`),
    /// and sets a cookie that carries the login, sealed, and binds it to this browser.
    /// `redirect_uri` must equal one of `oauth.allowed_redirects` exactly, or 400
    /// `invalid_redirect_uri` before any redirect. The application binds the login to itself
    /// with PKCE (RFC 7636): `code_challenge` = BASE64URL(SHA-256(`code_verifier`)) and
    /// `code_challenge_method=S256`, required unless `oauth.app_pkce` is `optional` (400
    /// `validation_failed` otherwise); it keeps the verifier for the exchange. The login comes
    /// back to `redirect_uri` with a one-time `code` for `POST /v1/auth/oauth/exchange`, or with
    /// `error`. Starts count against the `login` rate limit of the address.
    #[oai(path = "/v1/auth/oauth/:provider/start", method = "get", operation_id = "oauth_start")]
    async fn start(
        &self,
        svc: Data<&Arc<AuthService>>,
        provider: Path<String>,
        #[oai(validator(max_length = 2000))] redirect_uri: Query<String>,
        #[oai(validator(max_length = 128))] code_challenge: Query<Option<String>>,
        #[oai(validator(max_length = 16))] code_challenge_method: Query<Option<String>>,
    ) -> Result<Found, ApiError> {
        let (go, sealed) =
            svc.upstream.oauth_start(&provider.0, &redirect_uri.0, code_challenge.0, code_challenge_method.0).await?;
        Ok(Found::Found(go.location, login_cookie(&svc, &sealed, 600)))
    }

    /// Where the provider sends the browser back
    ///
    /// Spends `state` (once, whoever presents it) and opens this browser's login cookie with it
    /// (422 `invalid_state` otherwise: spent, expired, or another browser's, with no redirect),
    /// checks `iss` when sent (RFC 9207), exchanges the code and validates the ID token,
    /// then answers 302 to the application's `redirect_uri` with `code` (or `linked`), or with
    /// `error` (`access_denied`, `temporarily_unavailable`, `invalid_grant`, `invalid_id_token`,
    /// `identity_in_use`, …). Every refusal is audited.
    #[oai(path = "/v1/auth/oauth/:provider/callback", method = "get", operation_id = "oauth_callback")]
    #[allow(clippy::too_many_arguments)]
    async fn callback(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        provider: Path<String>,
        state: Query<Option<TokenField>>,
        #[oai(validator(max_length = 2048))] code: Query<Option<String>>,
        #[oai(validator(max_length = 256))] error: Query<Option<String>>,
        #[oai(validator(max_length = 2000))] iss: Query<Option<String>>,
    ) -> Result<Found, ApiError> {
        let started = read_cookie(req, cookie_name(&svc));
        let params =
            CallbackParams { state: state.0.map(Bounded::into_inner), code: code.0, error: error.0, iss: iss.0 };
        let go = svc.upstream.oauth_callback(&provider.0, params, started).await?;
        Ok(Found::Found(go.location, login_cookie(&svc, "", 0)))
    }

    /// Trade the code of a finished login for tokens
    ///
    /// Single use, within 60 s, and only with the `code_verifier` of the application that
    /// started the login: a code without it is refused (422 `invalid_code`) and spent. The usual
    /// token answer (cookies in cookie mode), or as for a password login 401 `mfa_required`, 403
    /// `mfa_enrolment_required`, 403 `email_unverified` / `phone_unverified` (a confirmation
    /// `verification` requires is missing, and this login did not prove the email). 403
    /// `identity_not_linked` when the provider's account opens no account here and none was made:
    /// sign-up is off, or an account has the email the provider vouched for but may not be
    /// joined by it (linking by email is off, or that account never confirmed the email). The
    /// answer is the same either way, so it never tells whether an account has an email: sign in
    /// another way and link from the account.
    #[oai(path = "/v1/auth/oauth/exchange", method = "post", operation_id = "oauth_exchange")]
    async fn exchange(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: JsonBody<ExchangeRequest>,
    ) -> Result<TokenReply, ApiError> {
        let body = body.0;
        let pair = svc.upstream.oauth_exchange(&body.code, body.code_verifier.as_deref(), client_info(req)).await?;
        Ok(token_reply(&svc, pair))
    }

    /// The signed-in user's linked providers
    #[oai(path = "/v1/me/identities", method = "get", operation_id = "list_my_identities", tag = "ApiTags::Me")]
    async fn identities(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
    ) -> Result<Json<Vec<IdentityResponse>>, ApiError> {
        Ok(Json(svc.upstream.identities(auth.0.user_id).await?.into_iter().map(Into::into).collect()))
    }

    /// Link a provider to the signed-in user
    ///
    /// Needs a sign-in newer than `security.step_up_window` (401 `step_up_required`). Returns
    /// the provider's URL to send the browser to, and sets the cookie that binds the flow to it
    /// (call this from the page that will navigate). The browser comes back to `redirect_uri`
    /// with `linked=<provider>`, or `error=identity_in_use` when that account is linked to
    /// someone else. The account's email is told of every provider linked.
    #[oai(
        path = "/v1/me/identities/:provider/start",
        method = "post",
        operation_id = "link_identity",
        tag = "ApiTags::Me"
    )]
    async fn link(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
        provider: Path<String>,
        body: JsonBody<LinkRequest>,
    ) -> Result<LinkReply, ApiError> {
        let (go, sealed) = svc.upstream.link_start(&auth.0, &provider.0, &body.0.redirect_uri).await?;
        Ok(LinkReply::Ok(Json(LinkStart { authorization_url: go.location }), login_cookie(&svc, &sealed, 600)))
    }

    /// Unlink a provider
    ///
    /// Needs a sign-in newer than `security.step_up_window` (401 `step_up_required`). 409
    /// `last_login_method` when it is the account's only way to sign in.
    #[oai(path = "/v1/me/identities/:id", method = "delete", operation_id = "unlink_identity", tag = "ApiTags::Me")]
    async fn unlink(&self, svc: Data<&Arc<AuthService>>, auth: Caller, id: Path<Uuid>) -> Result<NoContent, ApiError> {
        svc.upstream.unlink_identity(&auth.0, id.0).await?;
        Ok(NoContent::Done)
    }

    /// A user's linked providers (needs `users:read`)
    #[oai(
        path = "/v1/admin/users/:id/identities",
        method = "get",
        operation_id = "admin_list_identities",
        tag = "ApiTags::Admin"
    )]
    async fn admin_identities(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Vec<IdentityResponse>>, ApiError> {
        Ok(Json(svc.upstream.admin_identities(&caller.principal(), id.0).await?.into_iter().map(Into::into).collect()))
    }

    /// Unlink a user's provider (needs `users:write`)
    #[oai(
        path = "/v1/admin/users/:id/identities/:iid",
        method = "delete",
        operation_id = "admin_unlink_identity",
        tag = "ApiTags::Admin"
    )]
    async fn admin_unlink(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
        iid: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        svc.upstream.admin_unlink_identity(&caller.principal(), id.0, iid.0).await?;
        Ok(NoContent::Done)
    }
}
