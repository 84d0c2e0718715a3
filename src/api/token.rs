//! `/v1/token/introspect` (RFC 7662).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    ApiRequest, Object, OpenApi,
    payload::{Form, Json},
};
use uuid::Uuid;

use super::{auth_scheme::Caller, problem::ApiError, views::ApiTags};
use crate::service::{AuthService, Introspection};

pub struct TokenApi;

#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields)]
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
    Form(Form<IntrospectBody>),
    Json(Json<IntrospectBody>),
}

/// RFC 7662 §2.2: for anything not live, only `{"active": false}`.
#[derive(Object)]
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

#[OpenApi(prefix_path = "/v1/token", tag = "ApiTags::Tokens")]
impl TokenApi {
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
        let (IntrospectRequest::Form(Form(b)) | IntrospectRequest::Json(Json(b))) = body;
        Ok(Json(svc.introspect(&auth.0, &b.token).await?.into()))
    }
}
