//! `/v1/token/introspect` (RFC 7662).

use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiRequest, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::{
    auth_scheme::Caller,
    body::{FormBody, JsonBody},
    problem::ApiError,
    views::ApiTags,
};
use crate::{
    error::Error,
    service::{AuthService, Introspection},
};

pub struct TokenApi;

#[derive(Object)]
struct IntrospectBody {
    /// An access token or a refresh token.
    #[oai(validator(max_length = 8192))]
    token: String,
    /// Ignored (RFC 7662 §2.1): the token's shape tells.
    token_type_hint: Option<String>,
}

#[derive(ApiRequest)]
enum IntrospectRequest {
    /// Form-encoded, as RFC 7662 specifies.
    Form(FormBody<IntrospectBody>),
    Json(JsonBody<IntrospectBody>),
}

/// RFC 7662 §2.2: for anything not live, only `{"active": false}`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct IntrospectResponse {
    active: bool,
    /// `access_token` or `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    token_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    sub: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    sid: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    jti: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    exp: Option<u64>,
    #[oai(skip_serializing_if_is_none)]
    iat: Option<u64>,
    #[oai(skip_serializing_if_is_none)]
    roles: Option<Vec<String>>,
    #[oai(skip_serializing_if_is_none)]
    iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    aud: Option<String>,
}

impl From<Introspection> for IntrospectResponse {
    fn from(i: Introspection) -> Self {
        Self {
            active: i.active,
            token_type: i.token_type.map(str::to_owned),
            sub: i.sub,
            sid: i.sid,
            jti: i.jti,
            exp: i.exp,
            iat: i.iat,
            roles: i.roles,
            iss: i.iss,
            aud: i.aud,
        }
    }
}

/// RFC 6749 §4.4 token request.
#[derive(Object)]
struct ClientTokenRequest {
    /// Must be `client_credentials`.
    #[oai(validator(max_length = 64))]
    grant_type: String,
    /// Or in HTTP Basic authentication.
    #[oai(validator(max_length = 64))]
    client_id: Option<String>,
    #[oai(validator(max_length = 256))]
    client_secret: Option<String>,
}

#[derive(ApiRequest)]
enum ClientTokenBody {
    Form(FormBody<ClientTokenRequest>),
    Json(JsonBody<ClientTokenRequest>),
}

/// RFC 6749 §5.1 (no refresh token for clients).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ClientTokenResponse {
    access_token: String,
    /// `Bearer`.
    token_type: String,
    expires_in: u64,
}

/// `Authorization: Basic base64(client_id:client_secret)`.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    use base64::Engine as _;
    let v = req.headers().get(poem::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let (id, secret) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[OpenApi(prefix_path = "/v1/token", tag = "ApiTags::Tokens")]
impl TokenApi {
    /// Token for a service client (`grant_type=client_credentials`)
    ///
    /// Client id and secret in the form/JSON body or in HTTP Basic authentication. Wrong
    /// credentials give 401 `invalid_client`; other grant types 400 `unsupported_grant_type`.
    #[oai(path = "/", method = "post", operation_id = "client_token")]
    async fn token(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: ClientTokenBody,
    ) -> Result<Json<ClientTokenResponse>, ApiError> {
        let (ClientTokenBody::Form(FormBody(b)) | ClientTokenBody::Json(JsonBody(b))) = body;
        if b.grant_type != "client_credentials" {
            return Err(Error::UnsupportedGrantType.into());
        }
        let (id, secret) = match (b.client_id, b.client_secret) {
            (Some(id), Some(secret)) => (id, secret),
            _ => basic_credentials(req).ok_or(Error::InvalidClient)?,
        };
        let (access_token, expires_in) = svc.clients.token(&id, &secret).await?;
        Ok(Json(ClientTokenResponse { access_token, token_type: "Bearer".into(), expires_in }))
    }

    /// Is this token live? (RFC 7662)
    ///
    /// Revocation-aware. The caller needs the `tokens:introspect` permission.
    #[oai(path = "/introspect", method = "post", operation_id = "introspect")]
    async fn introspect(
        &self,
        svc: Data<&Arc<AuthService>>,
        auth: Caller,
        body: IntrospectRequest,
    ) -> Result<Json<IntrospectResponse>, ApiError> {
        let (IntrospectRequest::Form(FormBody(b)) | IntrospectRequest::Json(JsonBody(b))) = body;
        Ok(Json(svc.tokens.introspect(&auth.0, &b.token).await?.into()))
    }
}
