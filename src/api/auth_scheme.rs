//! Authentication of every protected operation: the `Authorization: Bearer` header, or in
//! cookie mode the access-token cookie (then with the CSRF check on state-changing requests).

use std::sync::Arc;

use poem::{Request, RequestBody, http::header};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme, auth::Bearer, registry::Registry,
};

use super::{
    cookies::{CookieNames, check_csrf, read_cookie},
    problem::{ApiError, Problem},
};
use crate::{
    error::Error,
    service::{AuthContext, AuthService},
};

/// Access token (JWT) from `POST /v1/auth/login` or `/v1/auth/refresh`. In cookie mode
/// (`tokens.transport`) the `__Host-authd_access` cookie works too, and then POST/DELETE
/// requests must echo the `__Host-authd_csrf` cookie in an `X-CSRF-Token` header.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
// Only describes the scheme in the OpenAPI document; `Caller` does the extracting.
#[allow(dead_code)]
pub struct BearerAuth(pub AuthContext);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<AuthContext> {
    authenticate(req, &bearer.token)
}

fn service(req: &Request) -> poem::Result<&Arc<AuthService>> {
    req.data::<Arc<AuthService>>().ok_or_else(|| ApiError::from(Error::Internal("service missing".into())).into())
}

fn authenticate(req: &Request, token: &str) -> poem::Result<AuthContext> {
    let ctx =
        service(req)?.tokens.authenticate(token).map_err(|e| poem::Error::from(ApiError::from(Error::from(e))))?;
    // A relying party's token serves that application, never authd's own account endpoints.
    if ctx.claims.azp.is_some() {
        return Err(ApiError::from(Error::InsufficientScope).into());
    }
    crate::service::audit::set_actor(format!("user:{}", ctx.user_id));
    Ok(ctx)
}

fn unauthorized(code: &str, detail: &str) -> poem::Error {
    let mut resp = Problem::new(poem::http::StatusCode::UNAUTHORIZED, code, detail).into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, poem::http::HeaderValue::from_static("Bearer"));
    poem::Error::from_response(resp)
}

/// The authenticated caller of an operation.
pub struct Caller(pub AuthContext);

impl Caller {
    /// The caller as the services judge its authority.
    pub fn principal(&self) -> crate::service::Principal {
        crate::service::Principal::Token(Box::new(self.0.clone()))
    }
}

/// Who may enrol a passkey: a signed-in caller, or the bearer of an enrolment token (an opaque
/// token, not a JWT) from a passwordless sign-up, a recovery, or a login a role sends to
/// enrolment (`mfa_token`).
pub struct EnrolCaller(pub crate::service::Enroller);

impl<'a> ApiExtractor<'a> for EnrolCaller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <BearerAuth as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <BearerAuth as ApiExtractor>::security_schemes()
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        options: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty() && t.matches('.').count() != 2);
        if let Some(token) = bearer {
            return Ok(EnrolCaller(crate::service::Enroller::Token(token.to_owned())));
        }
        let caller = Caller::from_request(req, body, options).await?;
        Ok(EnrolCaller(crate::service::Enroller::Session(Box::new(caller.0))))
    }
}

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <BearerAuth as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <BearerAuth as ApiExtractor>::security_schemes()
    }

    async fn from_request(req: &'a Request, _body: &mut RequestBody, _: ExtractParamOptions<()>) -> poem::Result<Self> {
        if let Some(value) = req.headers().get(header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or_default().trim();
            let token = match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                    token.trim()
                }
                _ if value.is_empty() => {
                    return Err(unauthorized("invalid_authorization_header", "the Authorization header is empty"));
                }
                _ => {
                    return Err(unauthorized(
                        "invalid_authorization_header",
                        "the Authorization header must be `Bearer <access token>`",
                    ));
                }
            };
            return authenticate(req, token).map(Caller);
        }
        let svc = service(req)?;
        let tokens = &svc.config().tokens;
        if tokens.transport.uses_cookies() {
            let names = CookieNames::for_config(tokens);
            if let Some(token) = read_cookie(req, names.access).filter(|t| !t.is_empty()) {
                let ctx = authenticate(req, &token)?;
                check_csrf(req, &names).map_err(ApiError::from)?;
                return Ok(Caller(ctx));
            }
        }
        Err(unauthorized("missing_token", "this endpoint needs an `Authorization: Bearer <access token>` header"))
    }
}
