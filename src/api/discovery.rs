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

/// Where verifiers find our keys and endpoints.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    /// Password login (`POST`, JSON).
    token_endpoint: String,
    /// Refresh-token exchange (`POST`, JSON).
    refresh_endpoint: String,
    introspection_endpoint: String,
    /// Algorithms our access tokens may be signed with.
    access_token_signing_alg_values_supported: Vec<String>,
    grant_types_supported: Vec<String>,
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
            token_endpoint: format!("{base}/v1/auth/login"),
            refresh_endpoint: format!("{base}/v1/auth/refresh"),
            introspection_endpoint: format!("{base}/v1/token/introspect"),
            access_token_signing_alg_values_supported: vec!["EdDSA".into(), "ES256".into()],
            grant_types_supported: vec!["password".into(), "refresh_token".into()],
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
