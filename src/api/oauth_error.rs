//! OAuth 2.0 error responses (RFC 6749 §5.2): `{"error", "error_description"}` as
//! `application/json`, which OAuth and OpenID client libraries read. The protocol endpoints
//! answer with these; the rest of the API with problem details.

use poem::{IntoResponse, Response};
use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::error::Error;

#[derive(Object, Debug, Clone, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_token`, `server_error`,
    /// `temporarily_unavailable`.
    pub error: String,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

#[derive(ApiResponse, Debug)]
pub enum OAuthError {
    /// The request is wrong: `invalid_request`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`.
    #[oai(status = 400)]
    BadRequest(Json<OAuthErrorBody>),
    /// The client did not authenticate (`invalid_client`), or the token is not good
    /// (`invalid_token`).
    #[oai(status = 401)]
    Unauthorized(Json<OAuthErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The token does not carry what this needs (`insufficient_scope`).
    #[oai(status = 403)]
    Forbidden(Json<OAuthErrorBody>),
    /// Slow down.
    #[oai(status = 429)]
    TooManyRequests(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] String),
    /// Our fault (`server_error`); the body holds no internals.
    #[oai(status = 500)]
    Internal(Json<OAuthErrorBody>),
    /// The database is unreachable or the server overloaded (`temporarily_unavailable`).
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] String),
}

fn body(error: &str, description: Option<String>) -> Json<OAuthErrorBody> {
    Json(OAuthErrorBody { error: error.into(), error_description: description })
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        match &e {
            Error::InvalidClient => {
                OAuthError::Unauthorized(body("invalid_client", Some(e.to_string())), "Basic realm=\"authd\"".into())
            }
            Error::InvalidToken(_) => OAuthError::Unauthorized(
                body("invalid_token", Some(e.to_string())),
                "Bearer error=\"invalid_token\"".into(),
            ),
            Error::InsufficientScope => OAuthError::Forbidden(body("insufficient_scope", Some(e.to_string()))),
            Error::InvalidGrant(_) | Error::UnauthorizedClient | Error::UnsupportedGrantType => {
                OAuthError::BadRequest(body(e.code(), Some(e.to_string())))
            }
            Error::InvalidRequest(_) | Error::Malformed(_) | Error::Invalid(_) => {
                OAuthError::BadRequest(body("invalid_request", Some(e.to_string())))
            }
            Error::RateLimited(secs) | Error::TooManyAttempts(secs) => OAuthError::TooManyRequests(
                body("temporarily_unavailable", Some(e.to_string())),
                secs.max(&1).to_string(),
            ),
            Error::StorageUnavailable(_) | Error::ProviderUnavailable(_) | Error::Busy => {
                tracing::warn!(error = %e, "protocol request refused: unavailable");
                OAuthError::Unavailable(body("temporarily_unavailable", None), "1".into())
            }
            _ => {
                tracing::error!(error = %e, "protocol request failed");
                OAuthError::Internal(body("server_error", None))
            }
        }
    }
}

/// The same as a plain response, for the endpoints outside the OpenAPI document.
pub fn oauth_response(e: Error) -> Response {
    OAuthError::from(e).into_response()
}
