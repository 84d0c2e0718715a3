//! The HTTP API: poem-openapi handlers that extract, call a service and map the result.

mod admin;
mod auth;
mod auth_scheme;
mod body;
mod client;
pub mod contract;
mod cookies;
mod discovery;
mod fields;
mod forward_auth;
mod limits;
mod me;
mod mfa;
mod oauth_error;
mod pages;
mod passkeys;
pub mod problem;
mod provider;
mod recovery;
mod upstream;

mod token;
mod views;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Route, http::Method, middleware::Cors};
use poem_openapi::OpenApiService;

use crate::service::AuthService;

type Apis = (
    auth::AuthApi,
    recovery::RecoveryApi,
    mfa::MfaApi,
    upstream::OauthApi,
    me::MeApi,
    passkeys::PasskeysApi,
    token::TokenApi,
    admin::AdminApi,
    discovery::DiscoveryApi,
    forward_auth::ForwardAuthApi,
);

/// The API description; needs no database, so `authd openapi` works anywhere.
pub fn api_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            recovery::RecoveryApi,
            mfa::MfaApi,
            upstream::OauthApi,
            me::MeApi,
            passkeys::PasskeysApi,
            token::TokenApi,
            admin::AdminApi,
            discovery::DiscoveryApi,
            forward_auth::ForwardAuthApi,
        ),
        "authd",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Registration, login, rotating refresh tokens, revocation and JWKS. Errors are \
             RFC 9457 `application/problem+json` with a stable `code`.",
    )
    .server("/")
}

/// The OpenAPI document as served at `/openapi.json` and checked in as `openapi/authd.json`.
pub fn spec() -> &'static str {
    contract::spec()
}

/// The OpenAPI document made from the code, as `authd openapi` prints it: the served one must
/// be the same.
pub fn document_from_code() -> String {
    contract::document_from_code()
}

/// Marks requests that came through the admin console's own listener (`admin.console_bind`).
#[derive(Debug, Clone, Copy)]
pub struct ConsoleListener;

/// The whole HTTP application.
pub fn app(svc: Arc<AuthService>) -> impl Endpoint {
    let server = &svc.config().server;
    let edge = problem::EdgeConfig {
        max_body: server.max_body_bytes,
        timeout: server.request_timeout.0,
        trusted_proxies: server.trusted_proxies.clone(),
        client_ip_header: server.client_ip_header,
        hsts: server.tls.is_enabled(),
        cors: !server.cors.origins.is_empty(),
    };
    let cors = cors(&server.cors);
    let api = api_service();
    let docs = poem::endpoint::make_sync(docs);
    let spec = poem::endpoint::make_sync(|_| {
        poem::Response::builder().content_type("application/json; charset=utf-8").body(contract::spec())
    });
    Route::new()
        .nest("/", api)
        .nest("/docs", Route::new().at("/", docs))
        .nest("/ui", pages::routes())
        .nest("/oauth2", provider::routes())
        .at("/openapi.json", spec)
        .at("/metrics", poem::get(metrics))
        .around(problem::framework_errors)
        .around(landing)
        .around(trace_request)
        .around(count_requests)
        .around(limits::rate_limit)
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .around(problem::edge_middleware)
        .data(svc)
        .data(edge)
}

/// A span per request for the collector (`telemetry.otlp_endpoint`); nothing without one.
async fn trace_request<E: Endpoint>(next: E, req: poem::Request) -> poem::Result<poem::Response> {
    use poem::IntoResponse as _;
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        target: "authd::otel",
        "request",
        // The route template, not the path: ids would make every name new.
        otel.name = %format_args!("{} {}", method_label(req.method()), contract::route_template(req.uri().path())),
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    if span.is_disabled() {
        return next.call(req).await.map(poem::IntoResponse::into_response);
    }
    let resp = next.call(req).instrument(span.clone()).await.map(|r| r.into_response());
    if let Ok(r) = &resp {
        span.record("http.response.status_code", i64::from(r.status().as_u16()));
    }
    resp
}

/// `GET /` from a browser goes to the API's documentation; anything else there stays the API's
/// 404.
async fn landing<E: Endpoint>(next: E, req: poem::Request) -> poem::Result<poem::Response> {
    use poem::IntoResponse as _;
    let html = req.header("accept").is_some_and(|a| a.contains("text/html"));
    if req.uri().path() == "/" && req.method() == Method::GET && html {
        return Ok(poem::web::Redirect::see_other("/docs").into_response());
    }
    next.call(req).await.map(poem::IntoResponse::into_response)
}

/// The Swagger UI page: the same bytes until the binary changes, so a browser keeps it and
/// asks again with its ETag (2 MB otherwise on every visit).
fn docs(req: poem::Request) -> poem::Response {
    static ETAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let etag = ETAG.get_or_init(|| {
        let d = ring::digest::digest(&ring::digest::SHA256, docs_page().as_bytes());
        let hex: String = d.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    });
    let fresh = req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == etag.as_str()));
    let builder = poem::Response::builder().header("etag", etag.as_str()).header("cache-control", "no-cache");
    if fresh {
        return builder.status(poem::http::StatusCode::NOT_MODIFIED).finish();
    }
    builder.content_type("text/html; charset=utf-8").body(docs_page())
}

/// The Swagger UI page, made at its first request: it embeds the UI's script and the whole
/// document (megabytes no idle server should hold). It shows the finished document, not
/// poem-openapi's draft of it.
fn docs_page() -> &'static str {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| {
        let api = api_service();
        api.swagger_ui_html().replace(&api.spec(), contract::spec())
    })
}

/// Counts every answer by route template and status, and times it. Only when metrics are on.
async fn count_requests<E: Endpoint>(next: E, req: poem::Request) -> poem::Result<poem::Response> {
    use poem::IntoResponse;
    let Some(svc) = req.data::<Arc<AuthService>>().filter(|s| s.config().metrics.token.is_some()).cloned() else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let route = contract::route_template(req.uri().path());
    let method = method_label(req.method()).to_owned();
    let started = std::time::Instant::now();
    let resp = next.call(req).await.map(IntoResponse::into_response)?;
    let m = svc.metrics();
    let labels = crate::metrics::RequestLabels { route: route.clone(), method, status: resp.status().as_u16() };
    m.requests.get_or_create(&labels).inc();
    m.latency.get_or_create(&crate::metrics::RouteLabels { route }).observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

/// The method as a label: the standard ones by name, any other (a client may make up as many
/// as it likes) as `other`.
fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics` for a scraper with `metrics.token`; without one configured, no such route.
#[poem::handler]
async fn metrics(svc: poem::web::Data<&Arc<AuthService>>, req: &poem::Request) -> poem::Response {
    use subtle::ConstantTimeEq as _;
    let Some(token) = svc.config().metrics.token.as_ref() else {
        return problem::problem_response(crate::error::Error::NoRoute);
    };
    let presented = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).unwrap_or_default();
    if presented.is_empty() {
        return problem::problem_response(crate::error::Error::InvalidToken(crate::error::TokenError::Missing));
    }
    if !bool::from(presented.as_bytes().ct_eq(token.0.as_bytes())) {
        return problem::problem_response(crate::error::Error::InvalidToken(crate::error::TokenError::BadSignature));
    }
    match svc.metrics_text().await {
        Ok(text) => poem::Response::builder().content_type("text/plain; version=0.0.4; charset=utf-8").body(text),
        Err(e) => problem::problem_response(e),
    }
}

/// CORS for the configured exact origins; none configured, no CORS headers at all.
fn cors(cfg: &crate::config::CorsConfig) -> Option<Cors> {
    if cfg.origins.is_empty() {
        return None;
    }
    let mut c = Cors::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers(["authorization", "content-type", "x-csrf-token"])
        .expose_headers(["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after"])
        .allow_credentials(cfg.allow_credentials)
        .max_age(600);
    for o in &cfg.origins {
        c = c.allow_origin(o.as_str());
    }
    Some(c)
}
