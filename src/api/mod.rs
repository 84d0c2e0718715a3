//! The HTTP API: poem-openapi handlers that extract, call a service and map the result.

mod auth;
mod auth_scheme;
mod client;
mod discovery;
mod me;
pub mod problem;
mod token;
mod views;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::service::AuthService;

type Apis = (
    auth::AuthApi,
    me::MeApi,
    token::TokenApi,
    discovery::DiscoveryApi,
);

/// The API description; needs no database, so `authd openapi` works anywhere.
pub fn api_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            me::MeApi,
            token::TokenApi,
            discovery::DiscoveryApi,
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
pub fn spec() -> String {
    api_service().spec()
}

/// The whole HTTP application.
pub fn app(svc: Arc<AuthService>) -> impl Endpoint {
    let max_body = svc.config().server.max_body_bytes;
    let api = api_service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .around(problem::edge_middleware)
        .data(svc)
        .data(problem::BodyLimit(max_body))
}
