//! Per-IP rate limits by route class, with `RateLimit-*` headers (IETF draft) on limited routes.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};

use super::{client::ClientIp, problem::Problem};
use crate::{security::limits::RouteClass, service::AuthService};

fn classify(method: &Method, path: &str) -> Option<RouteClass> {
    match (method, path) {
        // Forward-auth is asked by the proxy on every request of every user: from memory, and
        // never limited by the proxy's own address.
        (_, "/healthz" | "/readyz" | "/v1/authz/auth-request" | "/v1/authz/forward-auth") => None,
        (
            &Method::POST,
            "/v1/auth/login"
            | "/v1/auth/oauth/exchange"
            | "/ui/login"
            | "/v1/auth/passkey"
            | "/v1/auth/passkey/finish"
            | "/ui/login/passkey",
        ) => Some(RouteClass::Login),
        // The hosted login's way to a provider and back count as the API's start and exchange.
        (&Method::GET, p) if p.starts_with("/ui/login/with/") => Some(RouteClass::Login),
        (&Method::GET, "/ui/login/upstream") => Some(RouteClass::Login),
        (&Method::POST, "/v1/auth/login/mfa" | "/ui/login/code") => Some(RouteClass::Mfa),
        // A relying party's back end redeems codes and refreshes for all its users from one
        // address; its secrets are 256 random bits, so the budget is the refresh one.
        (&Method::POST, "/v1/token" | "/oauth2/par") => Some(RouteClass::Refresh),
        // Anyone may start a login with a provider: each start counts as a login attempt.
        (&Method::GET, p) if p.starts_with("/v1/auth/oauth/") && p.ends_with("/start") => Some(RouteClass::Login),
        (&Method::POST, "/v1/auth/register") => Some(RouteClass::Register),
        (&Method::POST, "/v1/auth/refresh") => Some(RouteClass::Refresh),
        (
            &Method::POST,
            "/v1/me/password"
            | "/v1/auth/verify"
            | "/v1/auth/verify/resend"
            | "/v1/auth/password/forgot"
            | "/v1/auth/password/reset"
            | "/v1/auth/recover"
            | "/v1/auth/recover/finish"
            | "/v1/me/passkeys/register"
            | "/v1/me/passkeys/register/finish"
            | "/ui/recover"
            | "/v1/auth/mfa/enrol"
            | "/v1/auth/mfa/enrol/confirm"
            | "/v1/me/mfa/totp/confirm"
            | "/ui/verify"
            | "/ui/reset"
            | "/ui/forgot",
        ) => Some(RouteClass::Password),
        _ => Some(RouteClass::General),
    }
}

pub async fn rate_limit<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let decision = match (
        req.data::<Arc<AuthService>>(),
        req.extensions().get::<ClientIp>(),
        classify(req.method(), req.uri().path()),
    ) {
        (Some(svc), Some(ip), Some(class)) => svc.check_ip_limit(class, ip.0).await,
        _ => None,
    };
    let Some(d) = decision else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let mut resp = if d.allowed {
        match next.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        }
    } else {
        let mut r = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this address; retry in {} s", d.retry_after_secs),
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs));
        r
    };
    let h = resp.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(d.reset_secs));
    Ok(resp)
}
