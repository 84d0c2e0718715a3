//! Access tokens: what we refuse, what an independent JWT library accepts, introspection.

use std::time::Duration;

use authd::{config::HumanDuration, model::now, security::jws::AccessClaims};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_problem, claims_of, header_of};

fn with_header(token: &str, header: &Value) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    let h = B64.encode(header.to_string());
    parts[0] = &h;
    parts.join(".")
}

fn hs256(header: &Value, claims: &Value, key: &[u8]) -> String {
    let si = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    format!("{si}.{}", B64.encode(ring::hmac::sign(&k, si.as_bytes())))
}

#[tokio::test]
async fn forged_tampered_and_expired_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let t = app.signed_in("olga@example.com").await;
    let real = claims_of(&t.access);
    let header = header_of(&t.access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    for claim in ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "roles"] {
        assert!(real.get(claim).is_some(), "claim {claim} present");
    }
    let parts: Vec<&str> = t.access.split('.').collect();
    let sign = |c: AccessClaims| app.svc().keys.ring().active.sign(&c).unwrap();
    let base: AccessClaims = serde_json::from_value(real.clone()).unwrap();
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let x = B64.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();

    let mut admin_claims = real.clone();
    admin_claims["roles"] = json!(["admin"]);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                B64.encode(json!({"alg":"none","typ":"at+jwt","kid":header["kid"]}).to_string()),
                parts[1]
            ),
            "invalid_token",
        ),
        (
            "alg none, no signature",
            format!("{}.{}", B64.encode(json!({"alg":"none"}).to_string()), parts[1]),
            "invalid_token",
        ),
        (
            "HS256 keyed with our public key",
            hs256(&json!({"alg":"HS256","typ":"at+jwt","kid":header["kid"]}), &real, &x),
            "invalid_token",
        ),
        (
            "unknown kid",
            with_header(&t.access, &json!({"alg":"EdDSA","typ":"at+jwt","kid":"../../etc/passwd"})),
            "invalid_token",
        ),
        ("wrong typ", with_header(&t.access, &json!({"alg":"EdDSA","typ":"JWT","kid":header["kid"]})), "invalid_token"),
        (
            "embedded jwk",
            with_header(&t.access, &json!({"alg":"EdDSA","typ":"at+jwt","kid":header["kid"],"jwk":{}})),
            "invalid_token",
        ),
        (
            "claims swapped, signature kept",
            format!("{}.{}.{}", parts[0], B64.encode(admin_claims.to_string()), parts[2]),
            "invalid_token",
        ),
        ("signature truncated", t.access[..t.access.len() - 4].to_string(), "invalid_token"),
        ("two parts", format!("{}.{}", parts[0], parts[1]), "invalid_token"),
        ("garbage", "not-a-token".into(), "invalid_token"),
        ("huge", "a".repeat(20_000), "invalid_token"),
        (
            "expired",
            sign(AccessClaims { exp: now() - 3600, iat: now() - 4000, nbf: now() - 4000, ..base.clone() }),
            "token_expired",
        ),
        ("not yet valid", sign(AccessClaims { nbf: now() + 3600, ..base.clone() }), "token_not_yet_valid"),
        ("wrong issuer", sign(AccessClaims { iss: "https://evil.example".into(), ..base.clone() }), "invalid_issuer"),
        ("wrong audience", sign(AccessClaims { aud: "someone-else".into(), ..base.clone() }), "invalid_audience"),
    ];
    for (name, token, code) in cases {
        let r = app.get_auth("/v1/me", &token).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"), "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code, "{name}: {body}");
    }
    // The genuine token still works.
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
}

#[tokio::test]
async fn bad_authorization_headers_get_clear_errors() {
    let app = TestApp::spawn().await;
    let cases = [
        (None, "missing_token"),
        (Some("Basic dXNlcjpwYXNz"), "invalid_authorization_header"),
        (Some("Bearer"), "invalid_authorization_header"),
        (Some("Bearer a.b.c"), "invalid_token"),
        (Some("token abc"), "invalid_authorization_header"),
    ];
    for (header, code) in cases {
        let mut req = app.http.get(app.url("/v1/me"));
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let body = assert_problem(req.send().await.unwrap(), StatusCode::UNAUTHORIZED, code).await;
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{header:?}");
    }
}

#[tokio::test]
async fn an_independent_jwt_library_verifies_our_tokens_from_the_jwks() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, jwk::JwkSet};
    let app = TestApp::spawn().await;
    let t = app.signed_in("pia@example.com").await;
    let jwks: JwkSet = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kid = header_of(&t.access)["kid"].as_str().unwrap().to_owned();
    let jwk = jwks.find(&kid).expect("kid listed in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&["http://authd.test"]);
    v.set_audience(&["authd"]);
    let data = decode::<Value>(&t.access, &key, &v).expect("jsonwebtoken accepts our token");
    assert_eq!(data.claims["roles"], json!(["user"]));
    let mut tampered = t.access.clone();
    tampered.pop();
    tampered.push(if t.access.ends_with('A') { 'B' } else { 'A' });
    assert!(decode::<Value>(&tampered, &key, &v).is_err());
}

#[tokio::test]
async fn es256_keys_sign_verifiable_tokens() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, jwk::JwkSet};
    let app = TestApp::spawn_with(|c| c.tokens.algorithm = authd::config::SigningAlgorithm::ES256).await;
    let t = app.signed_in("quinn@example.com").await;
    assert_eq!(header_of(&t.access)["alg"], "ES256");
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    let jwks: JwkSet = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&["http://authd.test"]);
    v.set_audience(&["authd"]);
    decode::<Value>(&t.access, &key, &v).expect("ES256 token verifies");
}

#[tokio::test]
async fn introspection_is_revocation_aware_and_needs_permission() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root@example.com").await;
    let user = app.signed_in("rita@example.com").await;

    let r = app.post_auth("/v1/token/introspect", &user.access, &json!({"token": user.access})).await;
    assert_problem(r, StatusCode::FORBIDDEN, "insufficient_permission").await;
    let r = app.post("/v1/token/introspect", &json!({"token": user.access})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;

    let live: Value = app
        .post_auth("/v1/token/introspect", &admin.access, &json!({"token": user.access}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(live["active"], true);
    assert_eq!(live["token_type"], "access_token");
    assert_eq!(live["sid"], user.session.as_str());
    assert_eq!(live["roles"], json!(["user"]));

    // RFC 7662 form encoding works too, and refresh tokens are understood.
    let form: Value = app
        .http
        .post(app.url("/v1/token/introspect"))
        .bearer_auth(&admin.access)
        .form(&[("token", user.refresh.as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(form["active"], true);
    assert_eq!(form["token_type"], "refresh_token");

    app.post_auth("/v1/auth/logout", &user.access, &json!({})).await;
    for token in [user.access.as_str(), user.refresh.as_str(), "garbage", "x.y.z"] {
        let dead: Value =
            app.post_auth("/v1/token/introspect", &admin.access, &json!({"token": token})).await.json().await.unwrap();
        assert_eq!(dead, json!({"active": false}), "{token}");
    }
}

#[tokio::test]
async fn discovery_documents_point_at_our_endpoints() {
    let app = TestApp::spawn().await;
    let d: Value =
        app.http.get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    // The issuer is where authd is reached (`server.public_url`, here the bound address).
    let base = app.url("");
    assert_eq!(d["issuer"], base.as_str());
    assert_eq!(d["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(d["introspection_endpoint"], format!("{base}/oauth2/introspect"));
    // What a client library believes: the token endpoint speaks OAuth forms, with the grants
    // listed. It used to name the JSON login with a `password` grant, which answers a form 415.
    assert_eq!(d["token_endpoint"], format!("{base}/v1/token"));
    assert_eq!(d["grant_types_supported"], json!(["authorization_code", "refresh_token", "client_credentials"]));
    assert_eq!(d["login_endpoint"], format!("{base}/v1/auth/login"));
    let admin = app.admin("root@example.com").await;
    let created: Value = app
        .post_auth("/v1/admin/clients", &admin.access, &json!({"name": "reporting", "roles": ["user"]}))
        .await
        .json()
        .await
        .unwrap();
    let (id, secret) = (created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap());
    let at_token_endpoint = |form: Vec<(&'static str, String)>| {
        let path = d["token_endpoint"].as_str().unwrap().trim_start_matches(base.as_str()).to_owned();
        app.http.post(app.url(&path)).form(&form).send()
    };
    // A backend's grant works; the others need a code or a refresh token of a relying party.
    for grant in [json!("client_credentials")] {
        let form = vec![
            ("grant_type", grant.as_str().unwrap().to_owned()),
            ("client_id", id.to_owned()),
            ("client_secret", secret.to_owned()),
        ];
        let r = at_token_endpoint(form).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{grant}");
    }
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let key = &jwks["keys"][0];
    for member in ["kty", "crv", "x", "kid", "alg", "use"] {
        assert!(key.get(member).is_some(), "{member}");
    }
    assert!(key.get("d").is_none(), "no private member");
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_verified_token_cache_holds_only_good_tokens_and_never_outlives_a_revocation() {
    let app = TestApp::spawn().await;
    let t = app.signed_in("vera@example.com").await;
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    assert_eq!(app.svc().verified_tokens(), 1);
    // A flood of forged tokens (right shape, wrong signature) and garbage adds nothing.
    let (head, rest) = t.access.split_once('.').unwrap();
    let (body, _) = rest.split_once('.').unwrap();
    for n in 0..2_000 {
        let forged = format!("{head}.{body}.{}", B64.encode(format!("forged-signature-{n}")));
        assert!(app.svc().tokens.authenticate(&forged).is_err());
        assert!(app.svc().tokens.authenticate(&format!("garbage-{n}")).is_err());
    }
    assert_eq!(app.svc().verified_tokens(), 1);
    // Cached, and still refused the moment its session ends.
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    assert_eq!(app.post_auth("/v1/auth/logout", &t.access, &json!({})).await.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get_auth("/v1/me", &t.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

/// authd knows the tokens it signs: the first use of one skips the signature check (which an
/// OpenID code flow would otherwise pay at UserInfo). New keys empty the cache, and the token is
/// then checked by its signature again.
#[tokio::test]
async fn a_token_authd_signed_is_known_good_at_its_first_use() {
    let app =
        TestApp::spawn_with(|c| c.metrics.token = Some(authd::config::Secret("scrape-token-0123456789".into()))).await;
    let counts = || async {
        let text = app.get_auth("/metrics", "scrape-token-0123456789").await.text().await.unwrap();
        let count = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name} in {text}")) as u64
        };
        (count("authd_verified_token_cache_hits_total"), count("authd_verified_token_cache_misses_total"))
    };
    let t = app.signed_in("neo@example.com").await;
    let (hits, misses) = counts().await;
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    assert_eq!(counts().await, (hits + 1, misses), "a hit at its first use");
    app.svc().keys.rotate(&authd::service::Principal::Operator).await.unwrap();
    assert_eq!(app.svc().verified_tokens(), 0);
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    assert_eq!(counts().await, (hits + 1, misses + 1), "verified again under the new key set");
    // A forged token is a miss, and never enters the cache.
    let (head, rest) = t.access.split_once('.').unwrap();
    let (body, _) = rest.split_once('.').unwrap();
    assert_eq!(app.status_of_me(&format!("{head}.{body}.{}", B64.encode("forged"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(counts().await, (hits + 1, misses + 2));
    assert_eq!(app.svc().verified_tokens(), 1);
}

#[tokio::test]
async fn the_verified_token_cache_stays_within_its_memory_bound() {
    let app = TestApp::spawn_with(|c| c.tokens.verified_cache_mb = 1).await;
    let t = app.signed_in("mia@example.com").await;
    let claims: AccessClaims = serde_json::from_value(claims_of(&t.access)).unwrap();
    let fits = (1usize << 20) / claims.approximate_size() as usize;
    // Every refresh mints a new access token; each is checked once, so each is cached.
    let mut refresh = t.refresh.clone();
    for _ in 0..fits + 400 {
        let r: Value = app.refresh(&refresh).await.json().await.unwrap();
        refresh = r["refresh_token"].as_str().unwrap().to_owned();
        assert!(app.svc().tokens.authenticate(r["access_token"].as_str().unwrap()).is_ok());
    }
    let held = app.svc().verified_tokens() as usize;
    assert!(held <= fits, "{held} tokens held; {fits} fit in 1 MiB");
    assert!(held >= fits / 2, "the cache still holds what fits: {held} of {fits}");
}

#[tokio::test]
async fn a_verified_token_left_unused_leaves_the_cache_and_is_verified_again_when_seen() {
    let app = TestApp::spawn_with(|c| c.tokens.verified_cache_idle = HumanDuration::secs(1)).await;
    let t = app.signed_in("idle@example.com").await;
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    assert_eq!(app.svc().verified_tokens(), 1);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(app.svc().verified_tokens(), 0, "an idle server gives the memory back");
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    assert_eq!(app.svc().verified_tokens(), 1);
}

#[tokio::test]
async fn a_token_check_that_hits_the_cache_allocates_nothing() {
    let app = TestApp::spawn().await;
    let t = app.signed_in("lean@example.com").await;
    assert!(app.svc().tokens.authenticate(&t.access).is_ok(), "the first check verifies and caches");
    // Settles the cache's pending bookkeeping, which moka may otherwise do on a later read.
    assert_eq!(app.svc().verified_tokens(), 1);
    let mut accepted = false;
    let info = allocation_counter::measure(|| accepted = app.svc().tokens.authenticate(&t.access).is_ok());
    assert!(accepted);
    assert_eq!(info.count_total, 0, "allocations in a cached token check: {info:?}");
}
