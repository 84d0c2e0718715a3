//! RFC 9457 problem details: the one place where domain errors become HTTP.

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{ApiResponse, Object, payload::Json};

use super::client::{ClientIp, client_info, resolve_client_ip};
use crate::error::{Error, FieldError};

pub use super::contract::PROBLEM_JSON;

/// One invalid field.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct FieldProblem {
    /// The request field at fault.
    pub field: String,
    /// Stable machine-readable reason, e.g. `too_short`, `invalid_email`.
    pub code: String,
    pub message: String,
}

/// RFC 9457 problem details.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// Problem type URI (`about:blank`: the `code` member tells problems apart).
    #[oai(rename = "type")]
    pub kind: String,
    /// Short summary: the HTTP reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for a human.
    pub detail: String,
    /// Stable machine-readable code, e.g. `invalid_credentials`, `refresh_token_reused`.
    pub code: String,
    /// Field-level errors of a `validation_failed` problem.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldProblem>>,
    /// With `mfa_required`: send it, with a code, to `POST /v1/auth/login/mfa`. With
    /// `mfa_enrolment_required`: it may only enrol a second factor (`POST /v1/auth/mfa/enrol`).
    #[oai(skip_serializing_if_is_none)]
    pub mfa_token: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.into(),
            errors: None,
            mfa_token: None,
        }
    }

    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let body = poem_openapi::types::ToJSON::to_json_string(&self);
        let mut resp = Response::builder().status(status).content_type(PROBLEM_JSON).body(body);
        if unauthorized {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Every error an operation can answer with.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request is not what this document describes: bad JSON, a wrong type, an unknown
    /// field, a value out of its bounds, a bad parameter (`validation_failed` with `errors[]`
    /// naming each field; `unsupported_grant_type`, `invalid_redirect_uri`).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing, invalid, expired or revoked credentials (`invalid_credentials`, `invalid_token`,
    /// `token_expired`, `token_revoked`, `invalid_refresh_token`, `refresh_token_reused`,
    /// `challenge_required`, `challenge_failed`, `invalid_client`, `mfa_required` with an
    /// `mfa_token`, `invalid_mfa_token`, `invalid_mfa_code`, `step_up_required`, …).
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>, #[oai(header = "WWW-Authenticate")] String),
    /// Authenticated but not allowed (`account_disabled`, `email_unverified`,
    /// `phone_unverified`, `mfa_enrolment_required` with an `mfa_token`, `identity_not_linked`,
    /// `insufficient_permission`, `role_not_grantable`, `target_exceeds_caller`,
    /// `permission_not_held`, `invalid_current_password`, `csrf_failed`).
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource (`not_found`).
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The path does not answer this method; `Allow` lists those it does
    /// (`method_not_allowed`).
    #[oai(status = 405, content_type = "application/problem+json")]
    MethodNotAllowed(Json<Problem>, #[oai(header = "Allow")] String),
    /// The request took longer than `server.request_timeout` (`request_timeout`).
    #[oai(status = 408, content_type = "application/problem+json")]
    RequestTimeout(Json<Problem>),
    /// The change conflicts with what is stored (`conflict`, `last_admin`, `role_in_use`,
    /// `builtin_role`, `mfa_already_enabled`, `mfa_not_enabled`, `last_login_method`).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The body exceeds `server.max_body_bytes` (`payload_too_large`).
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The body is not in a media type this operation reads (`unsupported_media_type`).
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Well-formed, but against a rule no schema can express: a weak or common password, an
    /// address that cannot receive mail, an unknown role, a one-time link or code that is wrong,
    /// spent or expired, a login `state` that is not this browser's (`validation_failed` with
    /// `errors[]`, `unknown_role`, `invalid_code`, `code_expired`, `invalid_state`).
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Slow down (`rate_limited`, `too_many_attempts`).
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] String),
    /// Our fault (`internal_error`); the body holds no internals.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// Overloaded, or the database or a login provider is unreachable; retry shortly
    /// (`overloaded`, `storage_unavailable`, `provider_unavailable`).
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] String),
}

fn with_fields(status: StatusCode, code: &str, fields: &[FieldError]) -> Json<Problem> {
    let mut problem = Problem::new(status, code, describe_fields(fields));
    problem.errors = Some(
        fields
            .iter()
            .map(|f| FieldProblem { field: f.field.clone(), code: f.code.clone(), message: f.message.clone() })
            .collect(),
    );
    Json(problem)
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = e.code();
        let p = |status: StatusCode| Json(Problem::new(status, code, e.to_string()));
        // No `_` arm: a new domain error must choose its status here.
        match &e {
            Error::Malformed(fields) => ApiError::BadRequest(with_fields(StatusCode::BAD_REQUEST, code, fields)),
            Error::Invalid(fields) => {
                ApiError::Unprocessable(with_fields(StatusCode::UNPROCESSABLE_ENTITY, code, fields))
            }
            Error::UnsupportedGrantType
            | Error::UnauthorizedClient
            | Error::InvalidGrant(_)
            | Error::InvalidRequest(_) => ApiError::BadRequest(p(StatusCode::BAD_REQUEST)),
            Error::InsufficientScope => ApiError::Forbidden(p(StatusCode::FORBIDDEN)),
            Error::UnknownRole(_) => ApiError::Unprocessable(p(StatusCode::UNPROCESSABLE_ENTITY)),
            Error::InvalidClient => ApiError::Unauthorized(p(StatusCode::UNAUTHORIZED), "Basic realm=\"authd\"".into()),
            Error::RateLimited(secs) | Error::TooManyAttempts(secs) => {
                ApiError::TooManyRequests(p(StatusCode::TOO_MANY_REQUESTS), secs.max(&1).to_string())
            }
            Error::ChallengeRequired | Error::ChallengeFailed(_) => {
                ApiError::Unauthorized(p(StatusCode::UNAUTHORIZED), "Bearer".into())
            }
            Error::InvalidCredentials
            | Error::InvalidRefreshToken
            | Error::RefreshTokenReused
            | Error::SecondFactorRequired
            | Error::InvalidToken(_) => {
                let challenge = match &e {
                    Error::InvalidToken(_) => "Bearer error=\"invalid_token\"",
                    _ => "Bearer",
                };
                ApiError::Unauthorized(p(StatusCode::UNAUTHORIZED), challenge.into())
            }
            // Well-formed, carrying a code that is wrong, spent or expired.
            Error::InvalidCode | Error::CodeExpired => ApiError::Unprocessable(p(StatusCode::UNPROCESSABLE_ENTITY)),
            Error::MfaRequired(token) => {
                let mut problem = Problem::new(StatusCode::UNAUTHORIZED, code, e.to_string());
                problem.mfa_token = Some(token.clone());
                ApiError::Unauthorized(Json(problem), "Bearer".into())
            }
            Error::MfaEnrolmentRequired(token) => {
                let mut problem = Problem::new(StatusCode::FORBIDDEN, code, e.to_string());
                problem.mfa_token = Some(token.clone());
                ApiError::Forbidden(Json(problem))
            }
            Error::InvalidMfaToken | Error::InvalidMfaCode | Error::InvalidPasskey | Error::InvalidEnrolmentToken => {
                ApiError::Unauthorized(p(StatusCode::UNAUTHORIZED), "Bearer".into())
            }
            // RFC 9470: the token is fine, the authentication behind it too old.
            Error::StepUpRequired => ApiError::Unauthorized(
                p(StatusCode::UNAUTHORIZED),
                "Bearer error=\"insufficient_user_authentication\"".into(),
            ),
            Error::MfaAlreadyEnabled | Error::MfaNotEnabled | Error::LastLoginMethod => {
                ApiError::Conflict(p(StatusCode::CONFLICT))
            }
            // A redirect target that is not allowed is refused before anything happens.
            Error::InvalidRedirectUri => ApiError::BadRequest(p(StatusCode::BAD_REQUEST)),
            // Well-formed, but naming no login under way in this browser.
            Error::InvalidState | Error::PasskeyRejected(_) => {
                ApiError::Unprocessable(p(StatusCode::UNPROCESSABLE_ENTITY))
            }
            Error::InvalidCeremony => ApiError::BadRequest(p(StatusCode::BAD_REQUEST)),
            Error::PasskeysUnavailable => ApiError::NotFound(p(StatusCode::NOT_FOUND)),
            Error::ProviderUnavailable(_) => {
                tracing::warn!(error = %e, "provider unavailable");
                ApiError::Unavailable(
                    Json(Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        code,
                        "the provider is unavailable; retry shortly",
                    )),
                    "5".into(),
                )
            }
            Error::FactorRequired => ApiError::Unauthorized(p(StatusCode::UNAUTHORIZED), "Bearer".into()),
            Error::EmailUnverified
            | Error::PasskeyRequired
            | Error::PhoneUnverified
            | Error::IdentityNotLinked
            | Error::AccountDisabled
            | Error::Forbidden(_)
            | Error::RoleNotGrantable { .. }
            | Error::TargetExceedsCaller(_)
            | Error::PermissionNotHeld(_)
            | Error::WrongCurrentPassword
            | Error::CsrfFailed => ApiError::Forbidden(p(StatusCode::FORBIDDEN)),
            Error::NotFound(_) | Error::NoRoute => ApiError::NotFound(p(StatusCode::NOT_FOUND)),
            // The edge fills in `Allow` from the document.
            Error::MethodNotAllowed => ApiError::MethodNotAllowed(p(StatusCode::METHOD_NOT_ALLOWED), String::new()),
            Error::RequestTimeout => ApiError::RequestTimeout(p(StatusCode::REQUEST_TIMEOUT)),
            Error::Conflict(_) | Error::LastAdmin | Error::RoleInUse(..) | Error::BuiltinRole(_) => {
                ApiError::Conflict(p(StatusCode::CONFLICT))
            }
            Error::PayloadTooLarge(_) => ApiError::PayloadTooLarge(p(StatusCode::PAYLOAD_TOO_LARGE)),
            Error::UnsupportedMediaType(_) => ApiError::UnsupportedMediaType(p(StatusCode::UNSUPPORTED_MEDIA_TYPE)),
            Error::Busy => ApiError::Unavailable(p(StatusCode::SERVICE_UNAVAILABLE), "1".into()),
            Error::StorageUnavailable(_) => {
                tracing::error!(error = %e, "request failed");
                ApiError::Unavailable(
                    Json(Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        code,
                        "the database is unavailable; retry shortly",
                    )),
                    "5".into(),
                )
            }
            Error::Storage(_) | Error::Internal(_) => {
                tracing::error!(error = %e, "request failed");
                ApiError::Internal(Json(Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "the server could not complete the request",
                )))
            }
        }
    }
}

fn describe_fields(fields: &[FieldError]) -> String {
    fields.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; ")
}

/// Turns every error the framework produces (bad JSON, wrong content type, unknown route,
/// oversized body …) into problem+json, leaves our own problems as they
/// are, and sets the headers every response carries.
pub async fn edge_middleware<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let edge = req.data::<EdgeConfig>().cloned().unwrap_or_default();
    let max_body = edge.max_body;
    if let Some(ip) = resolve_client_ip(&req, &edge.trusted_proxies, edge.client_ip_header) {
        req.extensions_mut().insert(ClientIp(ip));
    }
    let docs = req.uri().path().starts_with("/docs");
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Ok(with_common_headers(problem_response(Error::PayloadTooLarge(max_body)), docs));
    }
    if declared.is_none() {
        // A body without a declared length is cut at the limit; the truncated JSON fails to parse.
        let body = req.take_body();
        let limit = u64::try_from(max_body).unwrap_or(u64::MAX);
        req.set_body(poem::Body::from_async_read(tokio::io::AsyncReadExt::take(body.into_async_read(), limit)));
    }
    // An empty body without a content type is an empty JSON body, so optional bodies may be
    // left out entirely.
    let empty = req.headers().get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0")
        && !req.headers().contains_key(header::TRANSFER_ENCODING);
    if empty && !req.headers().contains_key(header::CONTENT_TYPE) {
        req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let client = client_info(&req);
    let audit = crate::service::audit::AuditContext { actor: None, ip: client.ip, user_agent: client.user_agent };
    let call = crate::service::audit::with_audit_context(audit, next.call(req));
    let resp = match tokio::time::timeout(edge.timeout, call).await {
        Ok(Ok(r)) => r.into_response(),
        Ok(Err(e)) => error_response(e, "", max_body),
        Err(_) => problem_response(Error::RequestTimeout),
    };
    let mut resp = with_common_headers(resp, docs);
    if edge.cors {
        resp.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if edge.hsts {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    Ok(resp)
}

/// What the edge needs to know, set as route data.
#[derive(Clone)]
pub struct EdgeConfig {
    pub max_body: usize,
    pub timeout: std::time::Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub client_ip_header: crate::config::ClientIpHeader,
    /// Served over TLS: send HSTS.
    pub hsts: bool,
    /// CORS is on: answers depend on `Origin`, so caches must key on it.
    pub cors: bool,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            max_body: 64 * 1024,
            timeout: std::time::Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            client_ip_header: crate::config::ClientIpHeader::XForwardedFor,
            hsts: false,
            cors: false,
        }
    }
}

/// The API is never framed and loads nothing; the Swagger page needs its inline script/style.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'";

fn with_common_headers(mut resp: Response, docs: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The hosted pages set their own (they need their style).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(if docs { DOCS_CSP } else { API_CSP }));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Innermost: the framework's errors become problems before any middleware sees them, so that
/// those which add headers (rate limits) add them to the problem.
pub async fn framework_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let max_body = req.data::<EdgeConfig>().map_or(EdgeConfig::default().max_body, |e| e.max_body);
    Ok(match next.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => error_response(e, &path, max_body),
    })
}

/// A domain error as the problem response its `ApiError` variant documents.
pub fn problem_response(e: Error) -> Response {
    ApiError::from(e).into_response()
}

/// The framework's own errors (unknown route, wrong method or content type, unparsable
/// parameter or form) as the problems every other refusal is.
fn error_response(e: poem::Error, path: &str, max_body: usize) -> Response {
    use poem_openapi::error::{ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError};
    let status = e.status();
    if let Some(p) = e.downcast_ref::<ParsePathError>() {
        // The router numbers path parameters (`param0`); the document names them.
        let index = p.name.strip_prefix("param").and_then(|n| n.parse().ok());
        let name = index.and_then(|i| super::contract::path_parameter(path, i)).unwrap_or_else(|| "path".to_owned());
        let field = FieldError::new(&name, "invalid_format", format!("{name} is not well formed"));
        return problem_response(Error::Malformed(vec![field]));
    }
    if let Some(p) = e.downcast_ref::<ParseParamError>() {
        let field = FieldError::new(p.name, "invalid_format", format!("{} is not well formed", p.name));
        return problem_response(Error::Malformed(vec![field]));
    }
    if e.is::<ParseRequestPayloadError>() {
        let field = FieldError::new("body", "invalid", "the body does not match its schema");
        return problem_response(Error::Malformed(vec![field]));
    }
    if let Some(c) = e.downcast_ref::<ContentTypeError>() {
        let detail = match c {
            ContentTypeError::NotSupported { content_type } => {
                format!("this operation does not read `{content_type}`; see the document for the media types it reads")
            }
            _ => "the request needs a Content-Type header".to_owned(),
        };
        return problem_response(Error::UnsupportedMediaType(detail));
    }
    let message = e.to_string();
    let resp = e.into_response();
    // Problems, and the OAuth errors (RFC 6749 §5.2) the protocol endpoints answer with.
    let ours = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()) || v.as_bytes().starts_with(b"application/json")
    });
    if ours {
        return resp;
    }
    match status {
        StatusCode::NOT_FOUND => problem_response(Error::NoRoute),
        StatusCode::METHOD_NOT_ALLOWED => {
            let mut resp = problem_response(Error::MethodNotAllowed);
            let allow = super::contract::allowed_methods(path).unwrap_or_else(|| "GET, HEAD".to_owned());
            if let Ok(v) = HeaderValue::from_str(&allow) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            resp
        }
        StatusCode::PAYLOAD_TOO_LARGE => problem_response(Error::PayloadTooLarge(max_body)),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => problem_response(Error::UnsupportedMediaType(message)),
        s if s.is_server_error() => problem_response(Error::Internal(message)),
        _ => problem_response(Error::Malformed(vec![FieldError::new("request", "invalid", message)])),
    }
}
