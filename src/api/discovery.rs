//! `/.well-known/*` and health probes.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::views::ApiTags;
use crate::service::AuthService;

pub struct DiscoveryApi;

/// RFC 7517 JSON Web Key Set.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct JwkSet {
    /// Public keys (`kty`, `crv`, `x`[, `y`], `kid`, `alg`, `use`) of the active key and of
    /// replaced keys whose tokens may still be live.
    keys: Vec<serde_json::Value>,
}

#[derive(ApiResponse)]
enum JwksResponse {
    /// The key set.
    #[oai(status = 200)]
    Ok(Json<JwkSet>, #[oai(header = "Cache-Control")] String),
}

/// Where verifiers find our keys and endpoints. The standard members name only what speaks
/// OAuth 2.0 (RFC 8414): the token endpoint takes `client_credentials` forms. Signing users in
/// is authd's own JSON API, under members of its own.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    /// OAuth 2.0 token endpoint (`POST`, form): service clients' `client_credentials`.
    token_endpoint: String,
    token_endpoint_auth_methods_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    introspection_endpoint: String,
    /// Algorithms our access tokens may be signed with.
    access_token_signing_alg_values_supported: Vec<String>,
    /// authd's password login (`POST`, JSON), not an OAuth grant.
    login_endpoint: String,
    /// authd's refresh-token exchange (`POST`, JSON), not an OAuth grant.
    refresh_endpoint: String,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Health {
    /// `ok`, or `unavailable` when storage or keys are not ready.
    status: String,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Storage is open and keys are loaded.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// Not ready to serve.
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

#[OpenApi(tag = "ApiTags::Discovery")]
impl DiscoveryApi {
    /// Public signing keys (JWKS)
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, svc: Data<&Arc<AuthService>>) -> JwksResponse {
        let set = svc.keys.ring().jwks();
        let keys = set.get("keys").and_then(|k| k.as_array()).cloned().unwrap_or_default();
        JwksResponse::Ok(Json(JwkSet { keys }), "public, max-age=300".into())
    }

    /// Discovery document
    #[oai(path = "/.well-known/openid-configuration", method = "get", operation_id = "discovery")]
    async fn discovery(&self, svc: Data<&Arc<AuthService>>) -> Json<Discovery> {
        let base = svc.config().tokens.issuer.trim_end_matches('/').to_owned();
        Json(Discovery {
            issuer: svc.config().tokens.issuer.clone(),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            token_endpoint: format!("{base}/v1/token"),
            token_endpoint_auth_methods_supported: vec!["client_secret_basic".into(), "client_secret_post".into()],
            grant_types_supported: vec!["client_credentials".into()],
            introspection_endpoint: format!("{base}/v1/token/introspect"),
            access_token_signing_alg_values_supported: vec!["EdDSA".into(), "ES256".into()],
            login_endpoint: format!("{base}/v1/auth/login"),
            refresh_endpoint: format!("{base}/v1/auth/refresh"),
        })
    }

    /// Liveness
    #[oai(path = "/healthz", method = "get", tag = "ApiTags::Health", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into() })
    }

    /// Readiness: storage answers and signing keys are loaded
    #[oai(path = "/readyz", method = "get", tag = "ApiTags::Health", operation_id = "readyz")]
    async fn readyz(&self, svc: Data<&Arc<AuthService>>) -> ReadyResponse {
        if svc.is_ready().await {
            ReadyResponse::Ready(Json(Health { status: "ok".into() }))
        } else {
            ReadyResponse::NotReady(Json(Health { status: "unavailable".into() }))
        }
    }
}
