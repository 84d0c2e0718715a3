//! `/.well-known/*` and health probes.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::views::ApiTags;
use crate::service::{AuthService, Readiness};

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

/// OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414): exactly what is implemented. The
/// issuer is `server.public_url`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    end_session_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    pushed_authorization_request_endpoint: String,
    scopes_supported: Vec<String>,
    response_types_supported: Vec<String>,
    response_modes_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    revocation_endpoint_auth_methods_supported: Vec<String>,
    introspection_endpoint_auth_methods_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    claims_supported: Vec<String>,
    claims_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    require_request_uri_registration: bool,
    require_pushed_authorization_requests: bool,
    authorization_response_iss_parameter_supported: bool,
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
    frontchannel_logout_supported: bool,
    prompt_values_supported: Vec<String>,
    acr_values_supported: Vec<String>,
    ui_locales_supported: Vec<String>,
    /// Algorithms authd's access tokens may be signed with.
    access_token_signing_alg_values_supported: Vec<String>,
    /// authd's own password login (`POST`, JSON), not an OAuth grant.
    login_endpoint: String,
    /// authd's own refresh-token exchange (`POST`, JSON), not an OAuth grant.
    refresh_endpoint: String,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Health {
    /// `ok`; on /readyz, `unavailable` when storage does not answer, or `draining` while the
    /// node is stopping.
    status: String,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Storage answers and the node is not stopping.
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
        let base = svc.provider.issuer();
        let at = |path: &str| format!("{base}{path}");
        let auth_methods = strings(&["client_secret_basic", "client_secret_post", "none"]);
        Json(Discovery {
            issuer: base.clone(),
            authorization_endpoint: at("/oauth2/authorize"),
            token_endpoint: at("/v1/token"),
            userinfo_endpoint: at("/oauth2/userinfo"),
            jwks_uri: at("/.well-known/jwks.json"),
            end_session_endpoint: at("/oauth2/logout"),
            revocation_endpoint: at("/oauth2/revoke"),
            introspection_endpoint: at("/oauth2/introspect"),
            pushed_authorization_request_endpoint: at("/oauth2/par"),
            scopes_supported: strings(&crate::model::SCOPES),
            response_types_supported: strings(&["code"]),
            response_modes_supported: strings(&["query"]),
            grant_types_supported: strings(&["authorization_code", "refresh_token", "client_credentials"]),
            subject_types_supported: strings(&["public"]),
            id_token_signing_alg_values_supported: strings(&["RS256", "ES256", "EdDSA"]),
            token_endpoint_auth_methods_supported: auth_methods.clone(),
            revocation_endpoint_auth_methods_supported: auth_methods.clone(),
            introspection_endpoint_auth_methods_supported: auth_methods,
            code_challenge_methods_supported: strings(&["S256"]),
            claims_supported: strings(&[
                "sub",
                "iss",
                "aud",
                "azp",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "sid",
                "email",
                "email_verified",
                "phone_number",
                "phone_number_verified",
                "preferred_username",
                "name",
                "updated_at",
                "locale",
                "roles",
            ]),
            claims_parameter_supported: true,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            require_request_uri_registration: false,
            require_pushed_authorization_requests: false,
            authorization_response_iss_parameter_supported: true,
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
            frontchannel_logout_supported: false,
            prompt_values_supported: strings(&["none", "login", "consent"]),
            acr_values_supported: strings(&["1", "2"]),
            ui_locales_supported: strings(crate::messages::LOCALES),
            access_token_signing_alg_values_supported: strings(&["EdDSA", "ES256", "RS256"]),
            login_endpoint: at("/v1/auth/login"),
            refresh_endpoint: at("/v1/auth/refresh"),
        })
    }

    /// Liveness
    #[oai(path = "/healthz", method = "get", tag = "ApiTags::Health", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into() })
    }

    /// Readiness: storage answers and the node is not stopping (503 `draining` then)
    #[oai(path = "/readyz", method = "get", tag = "ApiTags::Health", operation_id = "readyz")]
    async fn readyz(&self, svc: Data<&Arc<AuthService>>) -> ReadyResponse {
        match svc.is_ready().await {
            Readiness::Ready => ReadyResponse::Ready(Json(Health { status: "ok".into() })),
            Readiness::Unavailable => ReadyResponse::NotReady(Json(Health { status: "unavailable".into() })),
            Readiness::Draining => ReadyResponse::NotReady(Json(Health { status: "draining".into() })),
        }
    }
}
