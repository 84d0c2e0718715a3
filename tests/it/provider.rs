//! authd as an OpenID Provider, played the way the OpenID Foundation's certification plans play
//! it (Basic OP, Config OP, RP-initiated logout, back-channel logout): a relying party made
//! through the admin API, a browser that keeps cookies and follows nothing by itself, the hosted
//! login and consent pages, and every token checked for real against the JWKS.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation, decode, decode_header, jwk::Jwk};
use poem::{EndpointExt as _, Request, Route, handler, http::StatusCode as PoemStatus, web::Data};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    PASSWORD, TestApp, assert_problem, claims_of,
    oidc::{CHALLENGE, VERIFIER, browser, param},
    serve_fake,
};

/// The relying parties' registered redirect_uris and post-logout page.
const CB: &str = "https://rp.example.com/callback";
const CB2: &str = "https://rp.example.com/other-callback";
const BYE: &str = "https://rp.example.com/signed-out";
const BYE2: &str = "https://other-rp.example.com/signed-out";
const SCOPES: [&str; 5] = ["openid", "profile", "email", "phone", "roles"];
/// A PKCE verifier that answers no challenge of these tests.
const WRONG_VERIFIER: &str = "wrong-verifier-wrong-verifier-wrong-verifier-0";
const NO_CLIENT: &str = "00000000-0000-4000-8000-000000000000";

// ---- Config OP ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_describes_the_provider_found_where_it_was_fetched_from() {
    let app = TestApp::spawn().await;
    let base = app.url("");
    let r = app.http.get(app.url("/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "content-type").starts_with("application/json"));
    let d: Value = r.json().await.unwrap();
    // Assumed: the issuer has no trailing slash (it is `server.public_url`, here the bound address).
    assert_eq!(d["issuer"], base.as_str(), "the issuer is the address the document came from");
    assert_eq!(issuer(&app), base);

    for (member, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/v1/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("end_session_endpoint", "/oauth2/logout"),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("introspection_endpoint", "/oauth2/introspect"),
        ("pushed_authorization_request_endpoint", "/oauth2/par"),
    ] {
        assert_eq!(d[member], format!("{base}{path}"), "{member}");
    }
    // Exactly what is implemented: no implicit or hybrid flow, no password grant, no plain PKCE.
    let lists: [(&str, &[&str]); 10] = [
        ("response_types_supported", &["code"]),
        ("response_modes_supported", &["query"]),
        ("grant_types_supported", &["authorization_code", "refresh_token", "client_credentials"]),
        ("subject_types_supported", &["public"]),
        ("id_token_signing_alg_values_supported", &["RS256", "ES256", "EdDSA"]),
        ("scopes_supported", &SCOPES),
        ("token_endpoint_auth_methods_supported", &["client_secret_basic", "client_secret_post", "none"]),
        ("code_challenge_methods_supported", &["S256"]),
        ("prompt_values_supported", &["none", "login", "consent"]),
        ("acr_values_supported", &["1", "2"]),
    ];
    for (member, want) in lists {
        assert_set(&d[member], want, member);
    }
    for (member, want) in [
        ("claims_parameter_supported", true),
        ("request_parameter_supported", false),
        ("request_uri_parameter_supported", false),
        ("require_pushed_authorization_requests", false),
        ("authorization_response_iss_parameter_supported", true),
        ("backchannel_logout_supported", true),
        ("backchannel_logout_session_supported", true),
        ("frontchannel_logout_supported", false),
    ] {
        assert_eq!(d[member], want, "{member}");
    }
    // Assumed: claims_supported names at least `sub` and every claim a scope releases.
    let claims: Vec<&str> = d["claims_supported"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for claim in [
        "sub",
        "email",
        "email_verified",
        "preferred_username",
        "updated_at",
        "phone_number",
        "phone_number_verified",
        "roles",
    ] {
        assert!(claims.contains(&claim), "claims_supported lacks {claim}: {claims:?}");
    }
    // Assumed: no dynamic registration and no session-management iframe, as the spec has none.
    for absent in ["registration_endpoint", "check_session_iframe", "device_authorization_endpoint"] {
        assert!(d.get(absent).is_none(), "{absent} is advertised but not implemented");
    }

    // The key set has a key for each advertised algorithm, public parts only.
    let jwks: Value = app.http.get(d["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let has = |kty: &str, alg: &str, crv: Option<&str>| {
        keys.iter().any(|k| k["kty"] == kty && k["alg"] == alg && crv.is_none_or(|c| k["crv"] == c))
    };
    assert!(has("RSA", "RS256", None), "{jwks}");
    assert!(has("EC", "ES256", Some("P-256")), "{jwks}");
    assert!(has("OKP", "EdDSA", Some("Ed25519")), "{jwks}");
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").unwrap();
    assert!(rsa["n"].as_str().unwrap().len() >= 342, "an RSA modulus of 2048 bits at least");
    let mut kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().expect("every key has a kid")).collect();
    kids.sort_unstable();
    kids.dedup();
    assert_eq!(kids.len(), keys.len(), "kids are unique");
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "a private member {private} in the JWKS");
        }
        serde_json::from_value::<Jwk>(k.clone()).expect("a JWK a library reads");
    }
}

// ---- Basic OP: the whole sign-in ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_to_a_relying_party_through_the_hosted_login_and_consent() {
    sign_in_story(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_to_a_relying_party_through_the_hosted_login_and_consent_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    sign_in_story(app).await;
}

async fn sign_in_story(app: TestApp) {
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"name": "Photo Prints"})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let authz = Authz::new(&shop);
    let started = authd::model::now();

    // The shop sends Alice's browser to authorize; with no session there, authd asks who she is.
    let r = b.get(authz.url(&app)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let login = absolute(&app, &location(&r).unwrap());
    assert!(login.starts_with(&app.url("/ui/login?request=")), "{login}");
    let r = b.get(login).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    unframed(&r);
    let html = r.text().await.unwrap();
    for field in ["login", "password", "csrf", "request"] {
        assert!(html.contains(&format!("name=\"{field}\"")), "the login form lacks {field}: {html}");
    }

    // A wrong password: the form again, and no session.
    let r = submit(&app, &b, "/ui/login", &html, &[("login", alice.email.as_str()), ("password", "not her password")])
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session_cookie(&r), None);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"name="password""#), "{html}");

    // The right one: a browser session, then the consent page, as the shop is not trusted.
    let r = submit(&app, &b, "/ui/login", &html, &[("login", alice.email.as_str()), ("password", PASSWORD)]).await;
    let cookie = session_cookie(&r).expect("a browser session cookie").to_ascii_lowercase();
    for attribute in ["httponly", "samesite=lax", "path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let r = settle(&app, &b, r).await;
    assert_eq!(r.status(), StatusCode::OK);
    unframed(&r);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"name="decision" value="allow""#), "{html}");
    assert!(html.contains(r#"name="decision" value="deny""#), "{html}");
    // Assumed: the consent page names the client that asks.
    assert!(html.contains("Photo Prints"), "{html}");
    let r = settle(&app, &b, submit(&app, &b, "/ui/consent", &html, &[("decision", "allow")]).await).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = location(&r).unwrap();
    assert!(back.starts_with(&format!("{CB}?")), "{back}");
    assert_eq!(param(&back, "state").as_deref(), authz.get("state"));
    assert_eq!(param(&back, "iss"), Some(issuer(&app)));

    // The shop trades the code; the ID token says who, when, how, and for whom.
    let t = tokens(&app, &shop, &back).await;
    assert_eq!(words(&t["scope"]), ["email", "openid", "profile", "roles"]);
    assert!(t["refresh_token"].is_string(), "{t}");
    let id = id_token(&app, &shop, &t).await;
    assert_eq!(id["sub"], alice.id.as_str());
    assert_eq!(id["nonce"], authz.get("nonce").unwrap());
    let auth_time = id["auth_time"].as_u64().unwrap();
    assert!((started.saturating_sub(1)..=authd::model::now() + 1).contains(&auth_time), "{id}");
    assert_eq!(id["acr"], "1", "one factor: {id}");
    assert_eq!(id["amr"], json!(["pwd"]), "{id}");
    assert_eq!(id["email"], alice.email.as_str());
    assert_eq!(id["email_verified"], false);
    assert_eq!(id["preferred_username"], "alice");
    assert!(id["updated_at"].is_u64(), "{id}");
    assert_eq!(id["roles"], json!(["user"]));
    assert!(id.get("phone_number").is_none(), "phone was not asked for: {id}");
    let access = claims_of(str_of(&t, "access_token"));
    assert_eq!(access["azp"], shop.id.as_str(), "{access}");
    assert!(access["scope"].as_str().unwrap().split(' ').any(|s| s == "openid"), "{access}");

    // UserInfo, by GET and by POST, tells the same, for the same subject.
    let by_post = app.http.post(app.url("/oauth2/userinfo")).bearer_auth(str_of(&t, "access_token")).send();
    for r in [userinfo(&app, str_of(&t, "access_token")).await, by_post.await.unwrap()] {
        assert_eq!(r.status(), StatusCode::OK);
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["sub"], id["sub"], "{info}");
        assert_eq!(
            (&info["email"], &info["preferred_username"], &info["roles"]),
            (&id["email"], &json!("alice"), &id["roles"])
        );
    }
    let r = userinfo(&app, "not-a-token").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&r, "www-authenticate").contains(r#"error="invalid_token""#), "{:?}", r.headers());
    let r = app.http.get(app.url("/oauth2/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&r, "www-authenticate").starts_with("Bearer"));

    // A refresh rotates the refresh token and brings an ID token of the same sign-in, without nonce.
    let first = str_of(&t, "refresh_token");
    let t2 = token_response(refresh(&app, &shop, first).await).await;
    let id2 = id_token(&app, &shop, &t2).await;
    assert_eq!((&id2["sub"], &id2["aud"], &id2["auth_time"]), (&id["sub"], &id["aud"], &id["auth_time"]));
    assert!(id2.get("nonce").is_none(), "{id2}");
    let second = str_of(&t2, "refresh_token");
    assert_ne!(first, second);
    // The old one is refused, and its reuse ends the session: the rotated one goes too.
    oauth_error(refresh(&app, &shop, first).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    oauth_error(refresh(&app, &shop, second).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

// ---- Client authentication ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_post_its_secret_and_a_wrong_secret_is_invalid_client() {
    let app = TestApp::spawn().await;
    let admin = admin(&app).await;
    let post = rp(&app, &admin, json!({"trusted": true, "token_endpoint_auth_method": "client_secret_post"})).await;
    let basic = rp(&app, &admin, json!({"trusted": true})).await;
    let alice = user(&app, "alice").await;
    let t = sign_in(&app, &browser(), &post, &alice).await;
    assert_eq!(id_token(&app, &post, &t).await["sub"], alice.id.as_str());

    // A wrong secret, in the form or in the header, or a client that does not exist: 401.
    let wrong = |rp: &Rp| Rp { secret: Some("wrong-secret".into()), ..rp.clone() };
    for client in [wrong(&post), wrong(&basic), Rp { id: NO_CLIENT.into(), ..basic.clone() }] {
        let body = oauth_error(
            exchange(&app, &client, "some-code", CB, None).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
        .await;
        assert!(body.as_object().unwrap().keys().all(|k| k == "error" || k == "error_description"), "{body}");
    }
    // A grant that is not offered.
    let form = [("grant_type", "password"), ("username", alice.email.as_str()), ("password", PASSWORD)];
    oauth_error(post_as(&app, &basic, "/v1/token", &form).await, StatusCode::BAD_REQUEST, "unsupported_grant_type")
        .await;
}

// ---- The browser session, prompt, max_age, id_token_hint ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_session_spares_the_form_until_the_client_asks_for_a_fresh_login() {
    session_story(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_session_spares_the_form_until_the_client_asks_for_a_fresh_login_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    session_story(app).await;
}

async fn session_story(app: TestApp) {
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({})).await;
    let trusted = rp(&app, &admin, json!({"trusted": true})).await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    let b = browser();

    // The first visit: the form, then consent.
    let first = authorize(&app, &b, &Authz::new(&shop), Some(alice.email.as_str())).await;
    assert_eq!(first.pages, ["login", "consent"]);
    let signed_at =
        id_token(&app, &shop, &tokens(&app, &shop, &first.location).await).await["auth_time"].as_u64().unwrap();

    // Later ones ride on the browser session with the consent remembered; a trusted client never asks.
    for (client, authz) in [
        (&shop, Authz::new(&shop)),
        (&trusted, Authz::new(&trusted)),
        (&shop, Authz::new(&shop).set("prompt", "none")),
        (&shop, Authz::new(&shop).set("max_age", "600")),
    ] {
        let out = authorize(&app, &b, &authz, None).await;
        assert!(out.pages.is_empty(), "{authz:?}: {:?}", out.pages);
        let id = id_token(&app, client, &tokens(&app, client, &out.location).await).await;
        assert_eq!(id["sub"], alice.id.as_str());
        assert_eq!(id["auth_time"].as_u64(), Some(signed_at), "the same sign-in: {id}");
    }
    // prompt=consent asks again; prompt=none cannot ask, so a client not yet allowed is refused.
    assert_eq!(authorize(&app, &b, &Authz::new(&shop).set("prompt", "consent"), None).await.pages, ["consent"]);
    let newcomer = rp(&app, &admin, json!({})).await;
    assert_eq!(refused(&app, &b, &Authz::new(&newcomer).set("prompt", "none")).await, "consent_required");
    // A browser without a session: exactly login_required.
    assert_eq!(refused(&app, &browser(), &Authz::new(&shop).set("prompt", "none")).await, "login_required");

    // prompt=login: the form despite the session, and a newer auth_time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = authorize(&app, &b, &Authz::new(&shop).set("prompt", "login"), Some(alice.email.as_str())).await;
    assert_eq!(again.pages, ["login"]);
    let relogged =
        id_token(&app, &shop, &tokens(&app, &shop, &again.location).await).await["auth_time"].as_u64().unwrap();
    assert!(relogged > signed_at, "{relogged} after {signed_at}");

    // max_age: a sign-in older than it asks again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let aged = authorize(&app, &b, &Authz::new(&shop).set("max_age", "1"), Some(alice.email.as_str())).await;
    assert_eq!(aged.pages, ["login"]);
    let alice_t = tokens(&app, &shop, &aged.location).await;
    assert!(id_token(&app, &shop, &alice_t).await["auth_time"].as_u64().unwrap() > relogged);

    // id_token_hint: the session's own user passes prompt=none; another user's hint is login_required.
    let own = Authz::new(&shop).set("prompt", "none").set("id_token_hint", str_of(&alice_t, "id_token"));
    code_of(&authorize(&app, &b, &own, None).await.location);
    let bobs = browser();
    let visit = authorize(&app, &bobs, &Authz::new(&shop), Some(bob.email.as_str())).await;
    assert_eq!(visit.pages, ["login", "consent"], "consent is remembered per user");
    let bob_t = tokens(&app, &shop, &visit.location).await;
    let foreign = Authz::new(&shop).set("prompt", "none").set("id_token_hint", str_of(&bob_t, "id_token"));
    assert_eq!(refused(&app, &b, &foreign).await, "login_required");
}

// ---- Refused authorization requests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_authorization_request_is_told_to_the_client_only_at_a_registered_redirect_uri() {
    let app = TestApp::spawn().await;
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"trusted": true})).await;
    let public = rp(&app, &admin, json!({"trusted": true, "token_endpoint_auth_method": "none"})).await;
    let b = browser();

    // Who asks, or where the answer would go, is not certain: a page for the user, never a redirect.
    let mut doubtful = vec![Authz::new(&shop).set("client_id", NO_CLIENT), Authz::new(&shop).without("client_id")];
    for uri in [
        "https://rp.example.com/callback/more",
        "https://rp.example.com/callbac",
        "https://rp.example.com/callback?next=1",
        "http://rp.example.com/callback",
        "https://evil.rp.example.com/callback",
        "https://rp.example.com@evil.example/callback",
        "https://evil.example/callback",
    ] {
        doubtful.push(Authz::new(&shop).set("redirect_uri", uri));
    }
    for authz in doubtful {
        error_page(b.get(authz.url(&app)).send().await.unwrap()).await;
    }

    // Everything else is told to the client, with its state and our iss.
    let no_pkce = Authz::new(&public).without("code_challenge").without("code_challenge_method");
    for (authz, error) in [
        (Authz::new(&shop).without("response_type"), "invalid_request"),
        (Authz::new(&shop).set("response_type", "token"), "unsupported_response_type"),
        (Authz::new(&shop).set("response_type", "id_token"), "unsupported_response_type"),
        (Authz::new(&shop).set("response_type", "code id_token"), "unsupported_response_type"),
        (Authz::new(&shop).set("request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."), "request_not_supported"),
        (Authz::new(&shop).set("code_challenge", CHALLENGE).set("code_challenge_method", "plain"), "invalid_request"),
        (no_pkce, "invalid_request"),
        // Assumed: without `openid` the request is invalid_scope (the spec: scope must contain openid).
        (Authz::new(&shop).set("scope", "email profile"), "invalid_scope"),
    ] {
        assert_eq!(refused(&app, &b, &authz).await, error, "{authz:?}");
    }
    // A request_uri that is no live pushed request.
    let stale = Authz::new(&shop).set("request_uri", "urn:ietf:params:oauth:request_uri:nothing-here");
    let r = b.get(stale.url(&app)).send().await.unwrap();
    assert!(matches!(refusal(&app, r).await.as_deref(), None | Some("invalid_request_uri")));

    // Unknown parameters are ignored, and a form POST is the same request as a GET.
    let r = b.get(Authz::new(&shop).set("unknown_param", "1").url(&app)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(absolute(&app, &location(&r).unwrap()).starts_with(&app.url("/ui/login?request=")));
    let bad = Authz::new(&shop).set("response_type", "token");
    assert_eq!(back_with_error(&app, post_authorize(&app, &b, &bad).await, &bad).await, "unsupported_response_type");
    let alice = user(&app, "alice").await;
    let good = Authz::new(&shop).set("unknown_param", "1");
    let out = drive(&app, &b, post_authorize(&app, &b, &good).await, Some(alice.email.as_str()), "allow").await;
    assert_eq!(out.pages, ["login"]);
    assert_eq!(param(&out.location, "state").as_deref(), good.get("state"));
    let t = tokens(&app, &shop, &out.location).await;
    assert_eq!(id_token(&app, &shop, &t).await["nonce"], good.get("nonce").unwrap());
}

// ---- Codes and PKCE ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_spent_once_and_bound_to_its_client_redirect_uri_and_verifier() {
    codes_story(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_spent_once_and_bound_to_its_client_redirect_uri_and_verifier_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    codes_story(app).await;
}

async fn codes_story(app: TestApp) {
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"trusted": true, "redirect_uris": [CB, CB2]})).await;
    let other = rp(&app, &admin, json!({"trusted": true})).await;
    let public = rp(&app, &admin, json!({"trusted": true, "token_endpoint_auth_method": "none"})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let code = async |authz: Authz| code_of(&authorize(&app, &b, &authz, Some(alice.email.as_str())).await.location);
    let invalid_grant = async |r: Response| oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A code is spent once; presenting it again takes back what it gave.
    let c = code(Authz::new(&shop)).await;
    let t = token_response(exchange(&app, &shop, &c, CB, None).await).await;
    invalid_grant(exchange(&app, &shop, &c, CB, None).await).await;
    invalid_grant(refresh(&app, &shop, str_of(&t, "refresh_token")).await).await;
    assert_eq!(userinfo(&app, str_of(&t, "access_token")).await.status(), StatusCode::UNAUTHORIZED);

    // It is the client's it was issued to, for the redirect_uri it was sent to (CB2 is registered too).
    invalid_grant(exchange(&app, &other, &code(Authz::new(&shop)).await, CB, None).await).await;
    invalid_grant(exchange(&app, &shop, &code(Authz::new(&shop)).await, CB2, None).await).await;

    // PKCE: the verifier must answer the challenge, and cannot come where there was none.
    let pkce = |rp: &Rp| Authz::new(rp).set("code_challenge", CHALLENGE).set("code_challenge_method", "S256");
    invalid_grant(exchange(&app, &shop, &code(pkce(&shop)).await, CB, Some(WRONG_VERIFIER)).await).await;
    invalid_grant(exchange(&app, &shop, &code(Authz::new(&shop)).await, CB, Some(VERIFIER)).await).await;
    token_response(exchange(&app, &shop, &code(pkce(&shop)).await, CB, Some(VERIFIER)).await).await;
    // A public client proves itself by its verifier alone.
    invalid_grant(exchange(&app, &public, &code(Authz::new(&public)).await, CB, Some(WRONG_VERIFIER)).await).await;
    let t = token_response(exchange(&app, &public, &code(Authz::new(&public)).await, CB, Some(VERIFIER)).await).await;
    assert_eq!(id_token(&app, &public, &t).await["sub"], alice.id.as_str());

    // A refresh token is its client's too.
    let t =
        tokens(&app, &shop, &authorize(&app, &b, &Authz::new(&shop), Some(alice.email.as_str())).await.location).await;
    invalid_grant(refresh(&app, &other, str_of(&t, "refresh_token")).await).await;
}

// ---- Consent denied ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_consent_comes_back_as_access_denied_and_is_asked_again() {
    let app = TestApp::spawn().await;
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({})).await;
    let alice = user(&app, "alice").await;
    let b = browser();

    let authz = Authz::new(&shop);
    let out = drive(&app, &b, b.get(authz.url(&app)).send().await.unwrap(), Some(alice.email.as_str()), "deny").await;
    assert_eq!(out.pages, ["login", "consent"]);
    assert!(out.location.starts_with(&format!("{CB}?")), "{}", out.location);
    assert_eq!(param(&out.location, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&out.location, "state").as_deref(), authz.get("state"));
    assert_eq!(param(&out.location, "code"), None);

    // Nothing was remembered: she is asked again, and her yes gives a code.
    let out = authorize(&app, &b, &Authz::new(&shop), None).await;
    assert_eq!(out.pages, ["consent"]);
    tokens(&app, &shop, &out.location).await;
}

// ---- Pushed authorization requests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_request_works_once_and_is_required_where_the_client_demands_it() {
    par_story(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_request_works_once_and_is_required_where_the_client_demands_it_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    par_story(app).await;
}

async fn par_story(app: TestApp) {
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"trusted": true})).await;
    let strict = rp(&app, &admin, json!({"trusted": true, "require_par": true})).await;
    let alice = user(&app, "alice").await;
    let b = browser();

    // The shop pushes its request, authenticated, and sends the browser with the handle alone.
    let pushed = Authz::new(&shop);
    let wrong = Rp { secret: Some("wrong-secret".into()), ..shop.clone() };
    oauth_error(
        post_as(&app, &wrong, "/oauth2/par", &pushed.pairs()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let (by_ref, ttl) = push(&app, &shop, &pushed).await;
    assert_eq!(ttl, 60);
    let out = authorize(&app, &b, &by_ref, Some(alice.email.as_str())).await;
    assert_eq!(param(&out.location, "state").as_deref(), pushed.get("state"));
    let t = tokens(&app, &shop, &out.location).await;
    assert_eq!(id_token(&app, &shop, &t).await["nonce"], pushed.get("nonce").unwrap(), "the pushed parameters rule");

    // Once only.
    let r = b.get(by_ref.url(&app)).send().await.unwrap();
    assert!(matches!(refusal(&app, r).await.as_deref(), None | Some("invalid_request_uri")));

    // A client that requires PAR is refused without it, and served with it.
    assert_eq!(refused(&app, &b, &Authz::new(&strict)).await, "invalid_request");
    let (by_ref, _) = push(&app, &strict, &Authz::new(&strict)).await;
    tokens(&app, &strict, &authorize(&app, &b, &by_ref, None).await.location).await;
}

// ---- Revocation and introspection ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_and_introspection_says_so() {
    revocation_story(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_and_introspection_says_so_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    revocation_story(app).await;
}

async fn revocation_story(app: TestApp) {
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"trusted": true})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let introspect = async |token: &str| {
        let r = post_as(&app, &shop, "/oauth2/introspect", &[("token", token)]).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()
    };
    let revoke = async |token: &str| post_as(&app, &shop, "/oauth2/revoke", &[("token", token)]).await.status();

    let t = sign_in(&app, &b, &shop, &alice).await;
    let access = str_of(&t, "access_token");
    assert_eq!(introspect(access).await["active"], true);
    assert_eq!(introspect("garbage").await, json!({"active": false}));
    // Only a client may ask, or revoke.
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let r = app.http.post(app.url(path)).form(&[("token", access)]).send().await.unwrap();
        oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    assert_eq!(introspect(access).await["active"], true);

    // Revocation answers 200 whatever it is given; a revoked refresh token ends the client session.
    assert_eq!(revoke("garbage").await, StatusCode::OK);
    assert_eq!(revoke(str_of(&t, "refresh_token")).await, StatusCode::OK);
    oauth_error(refresh(&app, &shop, str_of(&t, "refresh_token")).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    assert_eq!(introspect(access).await["active"], false);
    assert_eq!(userinfo(&app, access).await.status(), StatusCode::UNAUTHORIZED);

    // Assumed: an access token revoked on its own is inactive from then on.
    let t = sign_in(&app, &b, &shop, &alice).await;
    assert_eq!(introspect(str_of(&t, "access_token")).await["active"], true);
    assert_eq!(revoke(str_of(&t, "access_token")).await, StatusCode::OK);
    assert_eq!(introspect(str_of(&t, "access_token")).await["active"], false);
}

// ---- RP-initiated logout ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_at_the_provider_ends_the_browser_session_and_the_clients_sessions() {
    logout_story(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_at_the_provider_ends_the_browser_session_and_the_clients_sessions_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    logout_story(app).await;
}

async fn logout_story(app: TestApp) {
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"trusted": true, "post_logout_redirect_uris": [BYE]})).await;
    rp(&app, &admin, json!({"trusted": true, "post_logout_redirect_uris": [BYE2]})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let t = sign_in(&app, &b, &shop, &alice).await;
    let hint = str_of(&t, "id_token");

    // A tampered hint, a page the shop did not register, another client's page: refused, no redirect.
    for (hint, to) in [(tampered(hint), BYE), (hint.to_owned(), "https://evil.example/bye"), (hint.to_owned(), BYE2)] {
        let url =
            logout_url(&app, &[("id_token_hint", hint.as_str()), ("post_logout_redirect_uri", to), ("state", "s")]);
        error_page(b.get(url).send().await.unwrap()).await;
    }
    assert!(signed_in(&app, &b, &shop).await, "a refused logout ends nothing");

    // The shop's logout: back to its page with its state, and everything under the session ends.
    let url = logout_url(&app, &[("id_token_hint", hint), ("post_logout_redirect_uri", BYE), ("state", "bye-1")]);
    let r = b.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r).unwrap();
    assert!(to.starts_with(&format!("{BYE}?")), "{to}");
    assert_eq!(param(&to, "state").as_deref(), Some("bye-1"));
    assert!(!signed_in(&app, &b, &shop).await);
    oauth_error(refresh(&app, &shop, str_of(&t, "refresh_token")).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    // Assumed: as after a revocation, the ended client session's access tokens are refused too.
    assert_eq!(userinfo(&app, str_of(&t, "access_token")).await.status(), StatusCode::UNAUTHORIZED);

    // Without a hint authd asks first: neither the page nor a form without its csrf signs out.
    sign_in(&app, &b, &shop, &alice).await;
    let r = b.get(app.url("/oauth2/logout")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    unframed(&r);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"name="decision" value="logout""#), "{html}");
    assert!(signed_in(&app, &b, &shop).await, "showing the page signs nobody out");
    let forged = b.post(app.url("/oauth2/logout")).form(&[("decision", "logout")]).send().await.unwrap();
    // Assumed: 403, as every hosted form posted without its csrf.
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(signed_in(&app, &b, &shop).await);
    let r = submit(&app, &b, "/oauth2/logout", &html, &[("decision", "logout")]).await;
    assert_eq!((r.status(), location(&r)), (StatusCode::OK, None), "a signed-out page");
    assert!(!signed_in(&app, &b, &shop).await);
}

// ---- Back-channel logout ----

/// What relying parties' back-channel endpoints received: (path, content type, body).
#[derive(Clone, Default)]
struct Inbox {
    got: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Inbox {
    fn at(&self, path: &str) -> Vec<(String, String)> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|(p, _, _)| p == path).map(|(_, ct, body)| (ct.clone(), body.clone())).collect()
    }

    /// How many deliveries `path` has, once there are `want` or `limit` passed.
    async fn wait_for(&self, path: &str, want: usize, limit: Duration) -> usize {
        let deadline = std::time::Instant::now() + limit;
        while self.at(path).len() < want && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.at(path).len()
    }
}

/// A receiver of back-channel logouts at `/shop`, and its address.
async fn inbox() -> (Inbox, std::net::SocketAddr) {
    let inbox = Inbox::default();
    let addr = serve_fake(Route::new().at("/shop", poem::post(receive)).data(inbox.clone())).await;
    (inbox, addr)
}

#[handler]
async fn receive(req: &Request, body: String, inbox: Data<&Inbox>) -> PoemStatus {
    let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    inbox.got.lock().unwrap().push((req.uri().path().to_owned(), ct, body));
    PoemStatus::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hear_of_a_logout_by_a_signed_back_channel_logout_token() {
    backchannel_story(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hear_of_a_logout_by_a_signed_back_channel_logout_token_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    backchannel_story(app).await;
}

async fn backchannel_story(app: TestApp) {
    let inbox = Inbox::default();
    let routes = Route::new().at("/shop", poem::post(receive)).at("/idle", poem::post(receive));
    let addr = serve_fake(routes.data(inbox.clone())).await;
    let admin = admin(&app).await;
    let with_receiver = |path: &str| {
        let uri = format!("http://{addr}{path}");
        json!({"trusted": true, "post_logout_redirect_uris": [BYE], "backchannel_logout_uri": uri})
    };
    let shop = rp(&app, &admin, with_receiver("/shop")).await;
    rp(&app, &admin, with_receiver("/idle")).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let t = sign_in(&app, &b, &shop, &alice).await;
    let id = id_token(&app, &shop, &t).await;

    let url = logout_url(&app, &[("id_token_hint", str_of(&t, "id_token")), ("post_logout_redirect_uri", BYE)]);
    assert_eq!(b.get(url).send().await.unwrap().status(), StatusCode::SEE_OTHER);

    // Delivered from the outbox within a bounded time, as a form with a logout_token.
    let mut got = None;
    for _ in 0..100 {
        got = inbox.at("/shop").into_iter().next();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ct, body) = got.expect("the back-channel logout arrives within 10 s");
    assert!(ct.starts_with("application/x-www-form-urlencoded"), "{ct}");
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no logout_token in {body}"));
    // Assumed: signed with the algorithm of the client's ID tokens (RS256 by default).
    let (head, c) = verify(&app, &token, &shop.alg, &shop.id).await;
    assert_eq!(head.typ.as_deref(), Some("logout+jwt"));
    assert_eq!((&c["sid"], &c["sub"]), (&id["sid"], &id["sub"]), "{c}");
    assert!(c["iat"].is_u64() && c["jti"].as_str().is_some_and(|j| !j.is_empty()), "{c}");
    assert_eq!(c["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}), "{c}");
    assert!(c.get("nonce").is_none(), "a logout token has no nonce: {c}");

    // Only clients that got tokens under the session hear of it, and once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(inbox.at("/idle").is_empty());
    assert_eq!(inbox.at("/shop").len(), 1);
}

// ---- Signing algorithms, scopes and the claims parameter ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_are_signed_as_each_client_chose_and_carry_the_claims_asked_for() {
    let app = TestApp::spawn().await;
    let admin = admin(&app).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    for alg in ["ES256", "EdDSA"] {
        let client = rp(&app, &admin, json!({"trusted": true, "id_token_signed_response_alg": alg})).await;
        let t = sign_in(&app, &b, &client, &alice).await;
        assert_eq!(id_token(&app, &client, &t).await["sub"], alice.id.as_str(), "{alg}");
    }

    // `openid` alone tells nothing but the subject; an unknown scope is dropped.
    let shop = rp(&app, &admin, json!({"trusted": true})).await;
    let out = authorize(&app, &b, &Authz::new(&shop).set("scope", "openid bogus"), None).await;
    let t = tokens(&app, &shop, &out.location).await;
    assert_eq!(words(&t["scope"]), ["openid"]);
    let id = id_token(&app, &shop, &t).await;
    let info: Value = userinfo(&app, str_of(&t, "access_token")).await.json().await.unwrap();
    assert_eq!(info["sub"], alice.id.as_str());
    for claim in ["email", "preferred_username", "roles", "phone_number"] {
        assert!(id.get(claim).is_none() && info.get(claim).is_none(), "{claim}: {id} {info}");
    }

    // A claim asked for by name is released only within a granted scope: the user consented
    // to scopes, and the claims parameter cannot widen that.
    let claims = json!({"userinfo": {"email": null}, "id_token": {"preferred_username": {"essential": true}}});
    let authz = Authz::new(&shop).set("scope", "openid").set("claims", &claims.to_string());
    let t = tokens(&app, &shop, &authorize(&app, &b, &authz, None).await.location).await;
    assert!(id_token(&app, &shop, &t).await.get("preferred_username").is_none());
    let info: Value = userinfo(&app, str_of(&t, "access_token")).await.json().await.unwrap();
    assert!(info.get("email").is_none(), "{info}");
    // The access token of `openid` alone carries none of the user's roles or names either.
    let at = claims_of(str_of(&t, "access_token"));
    let no_roles = at["roles"].as_array().is_none_or(|r| r.is_empty());
    assert!(no_roles && at.get("preferred_username").is_none(), "{at}");
    let authz = Authz::new(&shop).set("scope", "openid profile email").set("claims", &claims.to_string());
    let t = tokens(&app, &shop, &authorize(&app, &b, &authz, None).await.location).await;
    assert_eq!(id_token(&app, &shop, &t).await["preferred_username"], "alice");
    let info: Value = userinfo(&app, str_of(&t, "access_token")).await.json().await.unwrap();
    assert_eq!(info["email"], alice.email.as_str(), "{info}");
    // A malformed claims parameter is refused at the client.
    let out = authorize(&app, &b, &Authz::new(&shop).set("claims", "[1]"), None).await;
    assert_eq!(param(&out.location, "error").as_deref(), Some("invalid_request"), "{}", out.location);
}

// ---- What an outside review of the provider tried ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applications_token_holds_none_of_the_users_own_authority() {
    let app = TestApp::spawn().await;
    let admin_token = admin(&app).await;
    let shop = rp(&app, &admin_token, json!({"trusted": true})).await;
    let b = browser();
    // The admin signs in to an application asking for `openid` only.
    let root = User { id: String::new(), email: "root@example.com".into() };
    let t = tokens(
        &app,
        &shop,
        &authorize(&app, &b, &Authz::new(&shop).set("scope", "openid"), Some(&root.email)).await.location,
    )
    .await;
    let at = str_of(&t, "access_token");
    assert_eq!(claims_of(at)["roles"], json!([]), "{}", claims_of(at));
    // Even with `roles` granted, authd's permission check grants an application's token nothing.
    let t = tokens(&app, &shop, &authorize(&app, &b, &Authz::new(&shop), None).await.location).await;
    let at = str_of(&t, "access_token");
    assert_eq!(claims_of(at)["roles"], json!(["admin"]));
    let d: Value = app
        .post_auth("/v1/authz/check", &admin_token, &json!({"token": at, "permission": "users:write"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["allowed"], false, "{d}");
    // Introspection says whose it is.
    let i: Value =
        app.post_auth("/v1/token/introspect", &admin_token, &json!({"token": at})).await.json().await.unwrap();
    assert_eq!((i["active"].as_bool(), i["client_id"].as_str()), (Some(true), Some(shop.id.as_str())), "{i}");

    // Only someone holding all of an admin's powers makes a client that never asks.
    let r = app
        .post_auth(
            "/v1/admin/roles",
            &admin_token,
            &json!({"name": "integrator", "permissions": ["clients:write", "clients:read"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (_, integrator) = app.user_with_roles("integrator@example.com", &["user", "integrator"]).await;
    let body = json!({"name": "sneaky", "redirect_uris": [CB], "trusted": true});
    let r = app.post_auth("/v1/admin/clients", &integrator.access, &body).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", r.text().await.unwrap());
    let body = json!({"name": "honest", "redirect_uris": [CB]});
    assert_eq!(app.post_auth("/v1/admin/clients", &integrator.access, &body).await.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_browser_session_anywhere_ends_the_applications_under_it() {
    let app = TestApp::spawn().await;
    let admin_token = admin(&app).await;
    let (inbox, addr) = inbox().await;
    let shop =
        rp(&app, &admin_token, json!({"trusted": true, "backchannel_logout_uri": format!("http://{addr}/shop")})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let t = sign_in(&app, &b, &shop, &alice).await;
    // Alice, signed in to authd itself on her phone, sees the browser session and ends it.
    let phone = app.login(&alice.email, PASSWORD).await;
    let phone = crate::support::Tokens::from(&phone);
    let list: Value = app.get_auth("/v1/me/sessions", &phone.access).await.json().await.unwrap();
    let browser_sid = id_token(&app, &shop, &t).await["sid"].as_str().unwrap().to_owned();
    assert!(list.as_array().unwrap().iter().any(|s| s["id"] == browser_sid.as_str()), "{list}");
    let r = app
        .http
        .delete(app.url(&format!("/v1/me/sessions/{browser_sid}")))
        .bearer_auth(&phone.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The shop's tokens stop, and the shop hears of it.
    oauth_error(refresh(&app, &shop, str_of(&t, "refresh_token")).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    assert_eq!(userinfo(&app, str_of(&t, "access_token")).await.status(), StatusCode::UNAUTHORIZED);
    assert!(!signed_in(&app, &b, &shop).await);
    assert_eq!(inbox.wait_for("/shop", 1, Duration::from_secs(10)).await, 1);

    // Signing out everywhere (or a reset) does the same.
    let t = sign_in(&app, &b, &shop, &alice).await;
    let phone = crate::support::Tokens::from(&app.login(&alice.email, PASSWORD).await);
    let r = app.post_auth("/v1/auth/logout-all", &phone.access, &json!({})).await;
    assert!(r.status().is_success(), "{}", r.status());
    oauth_error(refresh(&app, &shop, str_of(&t, "refresh_token")).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    assert_eq!(inbox.wait_for("/shop", 2, Duration::from_secs(10)).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_seen_elsewhere_cannot_sign_the_user_out_without_asking() {
    let app = TestApp::spawn().await;
    let admin_token = admin(&app).await;
    let shop = rp(&app, &admin_token, json!({"trusted": true, "post_logout_redirect_uris": [BYE]})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let t = sign_in(&app, &b, &shop, &alice).await;
    let hint = str_of(&t, "id_token");
    // Another browser (or a script) holding only the ID token gets the question, and nothing ends.
    let stranger = browser();
    let url = logout_url(&app, &[("id_token_hint", hint), ("post_logout_redirect_uri", BYE), ("state", "s1")]);
    let r = stranger.get(&url).send().await.unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::OK, None));
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"name="decision" value="logout""#), "{html}");
    assert!(signed_in(&app, &b, &shop).await, "the question ends nothing");
    // Answered, it signs out and returns to the application with its state.
    let r = submit(&app, &stranger, "/oauth2/logout", &html, &[("decision", "logout")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(param(&location(&r).unwrap(), "state").as_deref(), Some("s1"));
    assert!(!signed_in(&app, &b, &shop).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_session_obeys_the_rules_set_after_it_began() {
    let app = TestApp::spawn().await;
    let admin_token = admin(&app).await;
    let shop = rp(&app, &admin_token, json!({"trusted": true})).await;
    let b = browser();
    let r = app
        .post_auth("/v1/admin/roles", &admin_token, &json!({"name": "treasury", "permissions": ["ledger:read"]}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.user_with_roles("cashier@example.com", &["user", "treasury"]).await;
    let cashier = User { id: String::new(), email: "cashier@example.com".into() };
    sign_in(&app, &b, &shop, &cashier).await;
    assert!(signed_in(&app, &b, &shop).await);
    // The role now requires a second factor: the password-only browser session no longer counts.
    let r = app
        .http
        .patch(app.url("/v1/admin/roles/treasury"))
        .bearer_auth(&admin_token)
        .json(&json!({"require_mfa": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!signed_in(&app, &b, &shop).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_cannot_stand_in_for_the_fresh_login_a_client_asked_for() {
    let app = TestApp::spawn().await;
    let admin_token = admin(&app).await;
    let shop = rp(&app, &admin_token, json!({})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let first = authorize(&app, &b, &Authz::new(&shop), Some(alice.email.as_str())).await;
    assert_eq!(first.pages, ["login", "consent"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // A step-up (max_age=1) shows the login form; posting the consent form instead gets the login again.
    let r = settle(
        &app,
        &b,
        b.get(Authz::new(&shop).set("max_age", "1").set("prompt", "consent").url(&app)).send().await.unwrap(),
    )
    .await;
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"name="password""#), "{html}");
    let r = submit(&app, &b, "/ui/consent", &html, &[("decision", "allow")]).await;
    let r = settle(&app, &b, r).await;
    assert!(location(&r).is_none_or(|l| param(&l, "code").is_none()), "a code without the fresh login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_spent_code_ends_nothing_and_a_consent_can_be_taken_back() {
    let app = TestApp::spawn().await;
    let admin_token = admin(&app).await;
    let shop = rp(&app, &admin_token, json!({})).await;
    let thief = rp(&app, &admin_token, json!({"token_endpoint_auth_method": "none"})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    let out = authorize(&app, &b, &Authz::new(&shop), Some(alice.email.as_str())).await;
    let t = tokens(&app, &shop, &out.location).await;
    // A leaked, spent code presented by another client: refused, and the shop's session lives on.
    let r = exchange(&app, &thief, &code_of(&out.location), &thief.redirect, Some(VERIFIER)).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let t = token_response(refresh(&app, &shop, str_of(&t, "refresh_token")).await).await;

    // Alice sees the shop among her consents and takes it back: its session ends, and it asks again.
    let me = crate::support::Tokens::from(&app.login(&alice.email, PASSWORD).await);
    let list: Value = app.get_auth("/v1/me/consents", &me.access).await.json().await.unwrap();
    assert_eq!(list[0]["client_id"], shop.id.as_str(), "{list}");
    let r =
        app.http.delete(app.url(&format!("/v1/me/consents/{}", shop.id))).bearer_auth(&me.access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    oauth_error(refresh(&app, &shop, str_of(&t, "refresh_token")).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    let again = authorize(&app, &b, &Authz::new(&shop), Some(alice.email.as_str())).await;
    assert_eq!(again.pages, ["consent"]);
    let r = app
        .http
        .delete(app.url(&format!("/v1/me/consents/{}", thief.id)))
        .bearer_auth(&me.access)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

// ---- Attacks from the plans ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attacks_of_the_certification_plans_get_nowhere() {
    let app = TestApp::spawn().await;
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"trusted": true})).await;
    let alice = user(&app, "alice").await;
    let b = browser();

    // A 128-character state with the characters that need care comes back byte for byte, with our
    // iss (mix-up), on success and on error alike.
    let state: String = "aZ09-._~%2F/=&+? #".chars().cycle().take(128).collect();
    let out = authorize(&app, &b, &Authz::new(&shop).set("state", &state), Some(alice.email.as_str())).await;
    assert_eq!(param(&out.location, "state"), Some(state.clone()));
    assert_eq!(param(&out.location, "iss"), Some(issuer(&app)));
    let t = tokens(&app, &shop, &out.location).await;
    let bad = Authz::new(&shop).set("state", &state).set("response_type", "token");
    assert_eq!(refused(&app, &b, &bad).await, "unsupported_response_type");

    // An RP's access token is no key to authd's own API.
    assert_problem(
        app.get_auth("/v1/me", str_of(&t, "access_token")).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;

    // Markup in what the error page might repeat stays text.
    let evil = "<script>alert(1)</script>";
    for authz in [
        Authz::new(&shop).set("client_id", evil).set("state", evil),
        Authz::new(&shop).set("redirect_uri", &format!("https://rp.example.com/{evil}")).set("state", evil),
    ] {
        let html = error_page(b.get(authz.url(&app)).send().await.unwrap()).await;
        assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    }

    // Login CSRF: the login form posted from another browser (no csrf cookie), or without its csrf
    // field, signs nobody in.
    let victim = browser();
    let page = settle(&app, &victim, victim.get(Authz::new(&shop).url(&app)).send().await.unwrap()).await;
    let html = page.text().await.unwrap();
    let creds = [("login", alice.email.as_str()), ("password", PASSWORD)];
    let forged = submit(&app, &browser(), "/ui/login", &html, &creds).await;
    let mut form = hidden(&html);
    form.retain(|(k, _)| k != "csrf");
    form.extend(creds.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let stripped = victim.post(app.url("/ui/login")).form(&form).send().await.unwrap();
    for r in [forged, stripped] {
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(session_cookie(&r), None);
    }
    assert!(!signed_in(&app, &victim, &shop).await);
}

// ---- The relying party's side ----

/// The issuer: `server.public_url`, in tests the bound address.
fn issuer(app: &TestApp) -> String {
    app.url("")
}

async fn admin(app: &TestApp) -> String {
    app.admin("root@example.com").await.access
}

struct User {
    id: String,
    email: String,
}

/// A user registered with `name` as username and `name@example.com`.
async fn user(app: &TestApp, name: &str) -> User {
    let email = format!("{name}@example.com");
    let r = app.post("/v1/auth/register", &json!({"email": email, "username": name, "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::CREATED, "register {name}");
    let v: Value = r.json().await.unwrap();
    User { id: v["id"].as_str().unwrap().to_owned(), email }
}

/// A relying party as registered.
#[derive(Clone)]
struct Rp {
    id: String,
    secret: Option<String>,
    method: String,
    redirect: String,
    alg: String,
}

impl Rp {
    fn public(&self) -> bool {
        self.method == "none"
    }
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", SERIAL.fetch_add(1, Ordering::Relaxed))
}

/// A relying party made through the admin API, `fields` over the defaults (redirect_uri [`CB`],
/// every scope, client_secret_basic, RS256, not trusted).
async fn rp(app: &TestApp, admin: &str, fields: Value) -> Rp {
    let mut body = json!({"name": unique("Client"), "redirect_uris": [CB], "scopes": SCOPES});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = app.post_auth("/v1/admin/clients", admin, &body).await;
    let status = r.status();
    let c: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let text = |k: &str, default: &str| body[k].as_str().unwrap_or(default).to_owned();
    let rp = Rp {
        id: str_of(&c, "client_id").to_owned(),
        secret: c["client_secret"].as_str().map(str::to_owned),
        method: text("token_endpoint_auth_method", "client_secret_basic"),
        redirect: body["redirect_uris"][0].as_str().unwrap().to_owned(),
        alg: text("id_token_signed_response_alg", "RS256"),
    };
    assert_eq!(rp.secret.is_none(), rp.public(), "a secret for confidential clients only: {c}");
    rp
}

/// An authorization request as a relying party builds it; `set` replaces a parameter.
#[derive(Clone, Debug)]
struct Authz(Vec<(String, String)>);

impl Authz {
    /// Code flow for `rp` with state and nonce, and PKCE for a public client.
    fn new(rp: &Rp) -> Self {
        let a = Self(Vec::new())
            .set("response_type", "code")
            .set("client_id", &rp.id)
            .set("redirect_uri", &rp.redirect)
            .set("scope", "openid email profile roles")
            .set("state", &unique("state"))
            .set("nonce", &unique("nonce"));
        if rp.public() { a.set("code_challenge", CHALLENGE).set("code_challenge_method", "S256") } else { a }
    }

    fn set(self, k: &str, v: &str) -> Self {
        let mut a = self.without(k);
        a.0.push((k.to_owned(), v.to_owned()));
        a
    }

    fn without(mut self, k: &str) -> Self {
        self.0.retain(|(n, _)| n != k);
        self
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn url(&self, app: &TestApp) -> String {
        let mut u = url::Url::parse(&app.url("/oauth2/authorize")).unwrap();
        u.query_pairs_mut().extend_pairs(&self.0);
        u.into()
    }
}

async fn post_authorize(app: &TestApp, b: &Client, authz: &Authz) -> Response {
    b.post(app.url("/oauth2/authorize")).form(&authz.0).send().await.unwrap()
}

/// Pushes `authz` for `rp`: the request the browser then carries (client_id and request_uri),
/// and the handle's lifetime.
async fn push(app: &TestApp, rp: &Rp, authz: &Authz) -> (Authz, u64) {
    let r = post_as(app, rp, "/oauth2/par", &authz.pairs()).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let uri = str_of(&body, "request_uri");
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{body}");
    (Authz(Vec::new()).set("client_id", &rp.id).set("request_uri", uri), body["expires_in"].as_u64().unwrap())
}

/// A form POST to `path` authenticated as `rp` by its method.
async fn post_as(app: &TestApp, rp: &Rp, path: &str, form: &[(&str, &str)]) -> Response {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut req = app.http.post(app.url(path));
    match (rp.method.as_str(), rp.secret.as_deref()) {
        // The secret is URL-safe, so RFC 6749's form-encoding before Basic changes nothing.
        ("client_secret_basic", Some(secret)) => req = req.basic_auth(&rp.id, Some(secret)),
        ("client_secret_post", Some(secret)) => form.extend([("client_id", rp.id.as_str()), ("client_secret", secret)]),
        _ => form.push(("client_id", rp.id.as_str())),
    }
    req.form(&form).send().await.unwrap()
}

async fn exchange(app: &TestApp, rp: &Rp, code: &str, redirect: &str, verifier: Option<&str>) -> Response {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect)];
    form.extend(verifier.map(|v| ("code_verifier", v)));
    post_as(app, rp, "/v1/token", &form).await
}

async fn refresh(app: &TestApp, rp: &Rp, token: &str) -> Response {
    post_as(app, rp, "/v1/token", &[("grant_type", "refresh_token"), ("refresh_token", token)]).await
}

async fn userinfo(app: &TestApp, access: &str) -> Response {
    app.get_auth("/oauth2/userinfo", access).await
}

/// `rp` trades the code `location` brought back (with the verifier, for a public client).
async fn tokens(app: &TestApp, rp: &Rp, location: &str) -> Value {
    token_response(exchange(app, rp, &code_of(location), &rp.redirect, rp.public().then_some(VERIFIER)).await).await
}

/// A successful token response: not to be cached, Bearer, with an ID token.
async fn token_response(r: Response) -> Value {
    let (status, cache, ct) = (r.status(), header(&r, "cache-control"), header(&r, "content-type"));
    let t: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(status, StatusCode::OK, "{t}");
    assert!(cache.contains("no-store"), "Cache-Control: {cache}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(t["token_type"], "Bearer", "{t}");
    assert!(t["access_token"].is_string() && t["id_token"].is_string(), "{t}");
    assert!(t["expires_in"].as_u64().is_some_and(|s| s > 0), "{t}");
    t
}

/// An RFC 6749 error: status, JSON, the code; 401 names its scheme in WWW-Authenticate.
async fn oauth_error(r: Response, status: StatusCode, error: &str) -> Value {
    let (got, ct, www) = (r.status(), header(&r, "content-type"), header(&r, "www-authenticate"));
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    assert!(ct.starts_with("application/json"), "{ct}: {text}");
    if status == StatusCode::UNAUTHORIZED {
        assert!(!www.is_empty(), "401 without WWW-Authenticate");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}

/// Verifies `jwt` with the JWKS key its `kid` names, as `alg`, from our issuer to `aud`.
async fn verify(app: &TestApp, jwt: &str, alg: &str, aud: &str) -> (Header, Value) {
    let kid = decode_header(jwt).unwrap().kid.expect("a kid");
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let jwk = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    assert_eq!(jwk["alg"], alg, "signed with the {alg} key");
    let key = DecodingKey::from_jwk(&serde_json::from_value::<Jwk>(jwk.clone()).unwrap()).unwrap();
    let mut v = Validation::new(alg.parse::<Algorithm>().unwrap());
    v.set_issuer(&[issuer(app)]);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = decode::<Value>(jwt, &key, &v).unwrap_or_else(|e| panic!("{alg} token does not verify: {e}"));
    (data.header, data.claims)
}

/// The ID token of a token response, verified with `rp`'s algorithm; its claims, with those every
/// ID token carries checked.
async fn id_token(app: &TestApp, rp: &Rp, t: &Value) -> Value {
    let (_, c) = verify(app, str_of(t, "id_token"), &rp.alg, &rp.id).await;
    assert!(c["aud"] == rp.id.as_str() || c["aud"] == json!([rp.id]), "for this client alone: {c}");
    assert_eq!(c["azp"], rp.id.as_str(), "{c}");
    let (now, iat) = (authd::model::now(), c["iat"].as_u64().unwrap());
    assert!(iat <= now + 5 && c["exp"].as_u64().unwrap() > now, "{c}");
    assert!(c["auth_time"].as_u64().is_some_and(|a| a <= iat), "{c}");
    assert!(c["sid"].as_str().is_some_and(|s| !s.is_empty()), "{c}");
    c
}

// ---- The browser ----

/// Where a browser was sent back to the client, and the hosted pages it was shown on the way.
struct Outcome {
    pages: Vec<&'static str>,
    location: String,
}

/// `authz` in browser `b`, played through: signs in as `who` when asked, allows when asked.
async fn authorize(app: &TestApp, b: &Client, authz: &Authz, who: Option<&str>) -> Outcome {
    drive(app, b, b.get(authz.url(app)).send().await.unwrap(), who, "allow").await
}

/// `who` signs in to `rp` in `b`: the token response.
async fn sign_in(app: &TestApp, b: &Client, rp: &Rp, who: &User) -> Value {
    tokens(app, rp, &authorize(app, b, &Authz::new(rp), Some(who.email.as_str())).await.location).await
}

/// Plays the browser from the authorization endpoint's answer `first` until authd sends it back
/// to the client: the login form filled as `who`, the consent page answered with `decision`.
async fn drive(app: &TestApp, b: &Client, first: Response, who: Option<&str>, decision: &str) -> Outcome {
    let mut pages = Vec::new();
    let mut r = settle(app, b, first).await;
    loop {
        if let Some(to) = location(&r) {
            assert_eq!(param(&to, "iss"), Some(issuer(app)), "every authorization response names its issuer");
            return Outcome { pages, location: to };
        }
        let (status, html) = (r.status(), r.text().await.unwrap());
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(pages.len() < 4, "the pages go round in circles: {pages:?}");
        let next = if html.contains(r#"name="password""#) {
            pages.push("login");
            let who = who.unwrap_or_else(|| panic!("asked to sign in: {html}"));
            submit(app, b, "/ui/login", &html, &[("login", who), ("password", PASSWORD)]).await
        } else if html.contains(r#"name="decision""#) {
            pages.push("consent");
            submit(app, b, "/ui/consent", &html, &[("decision", decision)]).await
        } else {
            panic!("a page the flow does not know: {html}")
        };
        r = settle(app, b, next).await;
    }
}

/// Follows authd's redirects to its own pages; stops at a page or at a redirect elsewhere.
async fn settle(app: &TestApp, b: &Client, mut r: Response) -> Response {
    for _ in 0..5 {
        let Some(next) = location(&r).map(|l| absolute(app, &l)).filter(|l| l.starts_with(&app.url("/"))) else {
            return r;
        };
        r = b.get(next).send().await.unwrap();
    }
    panic!("authd keeps redirecting to itself");
}

/// Posts the form of `html` (its hidden inputs) with `fields` to `path`.
async fn submit(app: &TestApp, b: &Client, path: &str, html: &str, fields: &[(&str, &str)]) -> Response {
    let mut form = hidden(html);
    form.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    b.post(app.url(path)).form(&form).send().await.unwrap()
}

/// The hidden inputs of a page's first form, in any attribute order, unescaped.
fn hidden(html: &str) -> Vec<(String, String)> {
    let html = html.split("</form>").next().unwrap_or(html);
    let attr = |tag: &str, name: &str| {
        regex::Regex::new(&format!(r#"\s{name}="([^"]*)""#)).unwrap().captures(tag).map(|c| unescape(&c[1]))
    };
    regex::Regex::new(r"<input\b[^>]*>")
        .unwrap()
        .find_iter(html)
        .map(|m| m.as_str())
        .filter(|tag| attr(tag, "type").as_deref() == Some("hidden"))
        .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default())))
        .collect()
}

fn unescape(s: &str) -> String {
    // `&amp;` last, so that an escaped entity is not unescaped twice.
    [
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#x27;", "'"),
        ("&#39;", "'"),
        ("&#x2f;", "/"),
        ("&#47;", "/"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ]
    .into_iter()
    .fold(s.to_owned(), |s, (from, to)| s.replace(from, to))
}

/// The error an authorization request is sent back to the client with, the rest of the redirect
/// checked: to its redirect_uri, with its state and our iss, and no code.
async fn refused(app: &TestApp, b: &Client, authz: &Authz) -> String {
    back_with_error(app, b.get(authz.url(app)).send().await.unwrap(), authz).await
}

async fn back_with_error(app: &TestApp, r: Response, authz: &Authz) -> String {
    let status = r.status();
    let Some(to) = location(&r).filter(|_| matches!(status, StatusCode::FOUND | StatusCode::SEE_OTHER)) else {
        panic!("{authz:?} answered {status}: {}", r.text().await.unwrap())
    };
    assert!(to.starts_with(&format!("{}?", authz.get("redirect_uri").unwrap())), "{to}");
    assert_eq!(param(&to, "state").as_deref(), authz.get("state"), "{to}");
    assert_eq!(param(&to, "iss"), Some(issuer(app)), "{to}");
    assert_eq!(param(&to, "code"), None, "{to}");
    param(&to, "error").unwrap_or_else(|| panic!("no error in {to}"))
}

/// A refusal where the redirect_uri may not be trusted: the client's `error`, or `None` for a page.
async fn refusal(app: &TestApp, r: Response) -> Option<String> {
    let Some(to) = location(&r) else {
        error_page(r).await;
        return None;
    };
    assert!(to.starts_with(&format!("{CB}?")), "{to}");
    assert_eq!((param(&to, "iss"), param(&to, "code")), (Some(issuer(app)), None), "{to}");
    param(&to, "error")
}

/// A refusal shown to the user: 400, HTML, never a redirect.
async fn error_page(r: Response) -> String {
    let (status, to, ct) = (r.status(), location(&r), header(&r, "content-type"));
    let html = r.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert_eq!(to, None, "a refusal that cannot trust the redirect_uri never redirects");
    assert!(ct.starts_with("text/html"), "{ct}");
    html
}

/// Whether `b` still has a session at authd: prompt=none for `rp` answers a code or login_required.
async fn signed_in(app: &TestApp, b: &Client, rp: &Rp) -> bool {
    let r = b.get(Authz::new(rp).set("prompt", "none").url(app)).send().await.unwrap();
    let to = location(&r).expect("prompt=none answers at once");
    assert!(to.starts_with(&format!("{}?", rp.redirect)), "{to}");
    match param(&to, "error") {
        None => !code_of(&to).is_empty(),
        Some(e) => {
            assert_eq!(e, "login_required");
            false
        }
    }
}

fn logout_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&app.url("/oauth2/logout")).unwrap();
    u.query_pairs_mut().extend_pairs(params);
    u.into()
}

/// A hosted page: neither framed nor kept.
fn unframed(r: &Response) {
    assert!(header(r, "content-security-policy").contains("frame-ancestors 'none'"), "{:?}", r.headers());
    assert!(header(r, "cache-control").contains("no-store"), "{:?}", r.headers());
}

/// The browser session cookie a response sets, with its attributes.
fn session_cookie(r: &Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| {
            c.split_once('=').is_some_and(|(name, rest)| {
                name.ends_with("authd_session") && !rest.is_empty() && !rest.starts_with(';')
            })
        })
        .map(str::to_owned)
}

// ---- Small things ----

fn header(r: &Response, name: &str) -> String {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn location(r: &Response) -> Option<String> {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_owned())
}

fn absolute(app: &TestApp, location: &str) -> String {
    url::Url::parse(&app.url("/")).unwrap().join(location).unwrap().into()
}

fn code_of(location: &str) -> String {
    param(location, "code").unwrap_or_else(|| panic!("no code in {location}"))
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// A space-separated list, sorted.
fn words(v: &Value) -> Vec<String> {
    let mut w: Vec<String> = v.as_str().unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    w.sort();
    w
}

fn assert_set(v: &Value, want: &[&str], what: &str) {
    let mut got: Vec<&str> =
        v.as_array().unwrap_or_else(|| panic!("{what}: {v}")).iter().filter_map(Value::as_str).collect();
    let mut want = want.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{what}");
}

/// `jwt` with the first character of its signature changed.
fn tampered(jwt: &str) -> String {
    let (signed, sig) = jwt.rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    format!("{signed}.{first}{}", &sig[1..])
}

// ---- The hosted login's buttons for login providers ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_to_an_application_through_a_login_provider_from_the_hosted_page() {
    use crate::support::oidc::{CLIENT_ID, CLIENT_SECRET, authd_with, op_config};
    let port = crate::support::free_port();
    let Some(op) = crate::support::RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let app = authd_with(port, vec![("op", op_config(&op))], |_| {}).await;
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"trusted": true})).await;
    op.next(json!({"sub": "zoe-at-op", "email": "zoe@example.com", "email_verified": true})).await;
    let b = browser();

    // The login page shows the provider's button; it leads there and back to the application.
    let authz = Authz::new(&shop);
    let trip = via_provider(&app, &b, &authz, "op").await;
    let back = trip.back.unwrap_or_else(|| panic!("not back at the application: {}", trip.page));
    assert_eq!(param(&back, "state").as_deref(), authz.get("state"), "{back}");
    let t = tokens(&app, &shop, &back).await;
    let id = id_token(&app, &shop, &t).await;
    assert!(id["amr"].as_array().is_some_and(|a| a.contains(&json!("fed"))), "{id}");
    let info: Value = userinfo(&app, str_of(&t, "access_token")).await.json().await.unwrap();
    assert_eq!(info["email"], "zoe@example.com");
    // The browser session holds: the next application request needs no sign-in.
    assert!(signed_in(&app, &b, &shop).await);

    // Back at /ui/login/upstream without the browser's own cookie: a page, nothing more.
    let stranger = browser();
    error_page(stranger.get(app.url("/ui/login/upstream?code=stolen")).send().await.unwrap()).await;
}

/// Where a login through the hosted page's `provider` button ended: back at the application,
/// or on one of authd's pages.
struct Trip {
    back: Option<String>,
    page: String,
    /// The authorization request authd sent to the provider.
    sent: Option<String>,
}

/// The authorization request, then the login page's button for `provider`, followed through.
async fn via_provider(app: &TestApp, b: &Client, authz: &Authz, provider: &str) -> Trip {
    let page = settle(app, b, b.get(authz.url(app)).send().await.unwrap()).await;
    let html = page.text().await.unwrap();
    let re = regex::Regex::new(&format!(r#"href="(/ui/login/with/{provider}\?[^"]+)""#)).unwrap();
    let button = unescape(&re.captures(&html).unwrap_or_else(|| panic!("no {provider} button: {html}"))[1]);
    let mut next = app.url(&button);
    let mut sent = None;
    for _ in 0..15 {
        let r = b.get(&next).send().await.unwrap();
        let Some(to) = location(&r) else {
            return Trip { back: None, page: r.text().await.unwrap(), sent };
        };
        if to.starts_with(CB) {
            return Trip { back: Some(to), page: String::new(), sent };
        }
        next = url::Url::parse(&next).unwrap().join(&to).unwrap().to_string();
        if sent.is_none() && !next.starts_with(&app.url("/")) {
            sent = Some(next.clone());
        }
    }
    panic!("no end to the redirects at {next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_login_asked_for_is_asked_of_the_login_provider_too() {
    use crate::support::oidc::{CLIENT_ID, CLIENT_SECRET, authd_with, op_config, provider};
    let port = crate::support::free_port();
    let Some(op) = crate::support::RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let github = provider(authd::config::ProviderKind::Github);
    let app = authd_with(port, vec![("op", op_config(&op)), ("github", github)], |_| {}).await;
    let admin = admin(&app).await;
    let bank = rp(&app, &admin, json!({"trusted": true})).await;
    let zoe = json!({"sub": "zoe-at-op", "email": "zoe@example.com", "email_verified": true});
    // Zoe signed in at the provider an hour ago; it lets her in without asking.
    let mut stale = zoe.clone();
    stale["auth_time"] = json!(authd::model::now() - 3600);
    op.next(stale.clone()).await;
    let b = browser();
    let first = via_provider(&app, &b, &Authz::new(&bank), "op").await;
    let back = first.back.unwrap_or_else(|| panic!("not back at the bank: {}", first.page));
    // The provider says she authenticated an hour ago, and so does the ID token.
    let id = id_token(&app, &bank, &tokens(&app, &bank, &back).await).await;
    assert!(id["auth_time"].as_u64().is_some_and(|a| a + 3000 < authd::model::now()), "{id}");
    let sent = first.sent.unwrap();
    assert!(param(&sent, "prompt").is_none() && param(&sent, "max_age").is_none(), "{sent}");
    // That login meets no max_age of five minutes.
    let r = b.get(Authz::new(&bank).set("max_age", "300").url(&app)).send().await.unwrap();
    assert!(location(&r).is_some_and(|l| l.starts_with("/ui/login")), "{:?}", location(&r));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    // The bank asks for a fresh login; the provider answers from its kept session again: the
    // form again, and no code.
    let asked_at = authd::model::now();
    let fresh = Authz::new(&bank).set("prompt", "login");
    let trip = via_provider(&app, &b, &fresh, "op").await;
    let sent = trip.sent.clone().expect("sent to the provider");
    assert_eq!(param(&sent, "prompt").as_deref(), Some("login"), "{sent}");
    assert!(param(&sent, "max_age").and_then(|a| a.parse::<u64>().ok()).is_some_and(|a| a <= 5), "{sent}");
    assert!(trip.back.is_none(), "a kept session is no fresh login: {:?}", trip.back);
    assert!(trip.page.contains("did not confirm it here"), "{}", trip.page);

    // The same with a provider that never says when the user signed in: not even sent there.
    let page = settle(&app, &b, b.get(fresh.url(&app)).send().await.unwrap()).await;
    let html = page.text().await.unwrap();
    let re = regex::Regex::new(r#"href="(/ui/login/with/github\?[^"]+)""#).unwrap();
    let button = unescape(&re.captures(&html).unwrap_or_else(|| panic!("no github button: {html}"))[1]);
    let r = b.get(app.url(&button)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(location(&r).is_none());
    assert!(r.text().await.unwrap().contains("did not confirm it here"));

    // A provider that asks again: the bank gets its code, and auth_time says when.
    op.next(zoe).await;
    let trip = via_provider(&app, &b, &fresh, "op").await;
    let back = trip.back.unwrap_or_else(|| panic!("not back at the bank: {}", trip.page));
    let t = tokens(&app, &bank, &back).await;
    let id = id_token(&app, &bank, &t).await;
    assert!(id["auth_time"].as_u64().is_some_and(|a| a >= asked_at), "{id}");
}

// ---- One code, redeemed twice at once ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_redeemed_twice_at_once_gives_tokens_once() {
    racing_redemptions(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_redeemed_twice_at_once_gives_tokens_once_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    racing_redemptions(app).await;
}

async fn racing_redemptions(app: TestApp) {
    let admin = admin(&app).await;
    let shop = rp(&app, &admin, json!({"trusted": true})).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    sign_in(&app, &b, &shop, &alice).await;
    for _ in 0..5 {
        let out = authorize(&app, &b, &Authz::new(&shop), None).await;
        let code = code_of(&out.location);
        let (one, two) = tokio::join!(
            exchange(&app, &shop, &code, &shop.redirect, None),
            exchange(&app, &shop, &code, &shop.redirect, None)
        );
        let mut statuses = [one.status(), two.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_never_goes_to_an_internal_address_unless_allowed() {
    let app = TestApp::spawn_with(|c| c.webhook_delivery.allow_private_targets = false).await;
    let admin_token = admin(&app).await;
    let (inbox, addr) = inbox().await;
    let body = json!({"trusted": true, "backchannel_logout_uri": format!("http://{addr}/shop")});
    let shop = rp(&app, &admin_token, body).await;
    let alice = user(&app, "alice").await;
    let b = browser();
    sign_in(&app, &b, &shop, &alice).await;
    let phone = crate::support::Tokens::from(&app.login(&alice.email, PASSWORD).await);
    let r = app.post_auth("/v1/auth/logout-all", &phone.access, &json!({})).await;
    assert!(r.status().is_success());
    // The outbox tries (and records the failure), but nothing reaches 127.0.0.1.
    assert_eq!(inbox.wait_for("/shop", 1, Duration::from_secs(3)).await, 0);
}
