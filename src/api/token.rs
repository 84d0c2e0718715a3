//! `/v1/token/introspect` (RFC 7662).

use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::{
    auth_scheme::Caller,
    body::{FormBody, JsonBody},
    client::client_info,
    oauth_error::OAuthError,
    problem::ApiError,
    views::ApiTags,
};
use crate::{
    error::Error,
    service::{AuthService, Grant, Introspection, Presented},
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
    /// The application the token was issued to: a backend's own token, or a relying party's
    /// (which then serves only its `scope`).
    #[oai(skip_serializing_if_is_none)]
    client_id: Option<Uuid>,
    /// A relying party's granted scopes.
    #[oai(skip_serializing_if_is_none)]
    scope: Option<String>,
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
            client_id: i.client_id,
            scope: i.scope,
        }
    }
}

/// RFC 6749 §4.1.3, §6 and §4.4 token request.
#[derive(Object)]
struct ClientTokenRequest {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    #[oai(validator(max_length = 64))]
    grant_type: String,
    /// Or in HTTP Basic authentication (`client_secret_basic`).
    #[oai(validator(max_length = 64))]
    client_id: Option<String>,
    /// With `client_secret_post`.
    #[oai(validator(max_length = 256))]
    client_secret: Option<String>,
    /// `authorization_code`: the code from the authorization response.
    #[oai(validator(max_length = 8192))]
    code: Option<String>,
    /// `authorization_code`: the `redirect_uri` of the authorization request.
    #[oai(validator(max_length = 2000))]
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier, when the request carried a challenge.
    #[oai(validator(max_length = 128))]
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    #[oai(validator(max_length = 512))]
    refresh_token: Option<String>,
    /// Ignored: a refresh keeps the scopes granted.
    #[oai(validator(max_length = 1000))]
    scope: Option<String>,
}

#[derive(ApiRequest)]
enum ClientTokenBody {
    Form(FormBody<ClientTokenRequest>),
    Json(JsonBody<ClientTokenRequest>),
}

/// RFC 6749 §5.1 and OIDC Core §3.1.3.3.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ClientTokenResponse {
    access_token: String,
    /// `Bearer`.
    token_type: String,
    expires_in: u64,
    /// For `authorization_code` and `refresh_token`: rotates at every use.
    #[oai(skip_serializing_if_is_none)]
    refresh_token: Option<String>,
    /// For `authorization_code` and `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    id_token: Option<String>,
    /// The scopes granted.
    #[oai(skip_serializing_if_is_none)]
    scope: Option<String>,
}

#[derive(ApiResponse)]
enum TokenResponse {
    /// Tokens. Never cached.
    #[oai(status = 200)]
    Ok(Json<ClientTokenResponse>, #[oai(header = "Cache-Control")] String, #[oai(header = "Pragma")] String),
}

/// `Authorization: Basic base64(client_id:client_secret)`, each part form-encoded (RFC 6749
/// §2.3.1).
pub(super) fn basic_credentials(req: &Request) -> Option<(String, String)> {
    use base64::Engine as _;
    let v = req.headers().get(poem::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let (id, secret) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    let decode = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((decode(id)?, decode(secret)?))
}

/// How the client presented itself: Basic, or `client_id` (and `client_secret`) in the body.
pub(super) fn presented(req: &Request, client_id: Option<String>, secret: Option<String>) -> Result<Presented, Error> {
    use crate::model::AuthMethod;
    match (basic_credentials(req), client_id, secret) {
        (Some((id, secret)), body_id, None) if body_id.as_ref().is_none_or(|b| *b == id) => {
            Ok(Presented { client_id: id, secret: Some(secret), method: AuthMethod::ClientSecretBasic })
        }
        (None, Some(id), Some(secret)) => {
            Ok(Presented { client_id: id, secret: Some(secret), method: AuthMethod::ClientSecretPost })
        }
        (None, Some(id), None) => Ok(Presented { client_id: id, secret: None, method: AuthMethod::None }),
        _ => Err(Error::InvalidClient),
    }
}

#[OpenApi(prefix_path = "/v1/token", tag = "ApiTags::Tokens")]
impl TokenApi {
    /// OAuth 2.0 token endpoint
    ///
    /// `authorization_code` (with the PKCE `code_verifier` when the request carried a
    /// challenge), `refresh_token` (rotates; the old one is refused afterwards), and
    /// `client_credentials` for a backend's own token. Clients authenticate as registered:
    /// HTTP Basic, `client_id` + `client_secret` in the body, or `client_id` alone for a public
    /// client. Errors are RFC 6749 §5.2 JSON (`invalid_client` 401; `invalid_grant`,
    /// `invalid_request`, `unsupported_grant_type`, `unauthorized_client` 400).
    #[oai(path = "/", method = "post", operation_id = "client_token")]
    async fn token(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        body: ClientTokenBody,
    ) -> Result<TokenResponse, OAuthError> {
        let (ClientTokenBody::Form(FormBody(b)) | ClientTokenBody::Json(JsonBody(b))) = body;
        let grant = match b.grant_type.as_str() {
            "client_credentials" => Grant::ClientCredentials,
            "authorization_code" => Grant::AuthorizationCode {
                code: b.code.ok_or_else(|| Error::InvalidRequest("code is missing".into()))?,
                redirect_uri: b.redirect_uri,
                verifier: b.code_verifier,
            },
            "refresh_token" => Grant::RefreshToken {
                token: b.refresh_token.ok_or_else(|| Error::InvalidRequest("refresh_token is missing".into()))?,
            },
            _ => return Err(Error::UnsupportedGrantType.into()),
        };
        let presented = presented(req, b.client_id, b.client_secret)?;
        let issued = svc.provider.token(&presented, grant, client_info(req)).await?;
        Ok(TokenResponse::Ok(
            Json(ClientTokenResponse {
                access_token: issued.access_token,
                token_type: "Bearer".into(),
                expires_in: issued.expires_in,
                refresh_token: issued.refresh_token,
                id_token: issued.id_token,
                scope: issued.scope,
            }),
            "no-store".into(),
            "no-cache".into(),
        ))
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
