//! Login with external providers: a real OpenID Connect provider (node-oidc-provider, from npm)
//! as the upstream, and fakes only for what it cannot play: ID tokens that must be refused, and
//! GitHub's and Facebook's non-OIDC user APIs.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use authd::config::{HumanDuration, ProviderKind};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use poem::{
    EndpointExt as _, Request, Response, Route, handler,
    http::StatusCode as PoemStatus,
    web::{Data, Form, Json as PoemJson, Query},
};
use reqwest::{Method, StatusCode};
use ring::signature::KeyPair as _;
use serde_json::{Value, json};

use crate::support::{
    PASSWORD, RealOp, TestApp, Tokens, assert_problem, call, claims_of, free_port,
    oidc::{
        APP, CLIENT_ID, CLIENT_SECRET, authd_with, browser, exchange, failures, login_at, op_config, param, provider,
        register_confirmed, start_url, until_app, users,
    },
    serve_fake,
};

async fn oidc_story(app: &TestApp, op: &RealOp) {
    let r = app.http.get(app.url("/v1/auth/providers")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!([{"name": "op", "display_name": "Test OP"}]));

    // Open redirects are refused before anyone is sent anywhere.
    for bad in [
        "http://app.test/auth/done/x",
        "http://app.test:8080/auth/done",
        "https://app.test/auth/done",
        "http://app.test@evil.example/auth/done",
        "http://evil.example/?http://app.test/auth/done",
    ] {
        let r = browser().get(start_url(app, "op", bad)).send().await.unwrap();
        assert!(r.headers().get("location").is_none());
        assert_problem(r, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    }
    assert_problem(
        browser().get(start_url(app, "nope", APP)).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // First login creates the account, with the email the provider verified.
    op.next(json!({"sub": "op-user-1", "email": "Nora@Example.com", "email_verified": true, "name": "Nora"})).await;
    let before = users(app).await;
    let back = login_at(app, "op").await;
    let r = exchange(app, &back).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t = Tokens::from(&r.json::<Value>().await.unwrap());
    assert_eq!(claims_of(&t.access)["amr"], json!(["fed"]));
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!((me["email"].as_str(), &me["email_verified"]), (Some("nora@example.com"), &json!(true)));
    assert_eq!(users(app).await, before + 1);
    let ids: Value = app.get_auth("/v1/me/identities", &t.access).await.json().await.unwrap();
    assert_eq!((ids[0]["provider"].as_str(), ids[0]["subject"].as_str()), (Some("op"), Some("op-user-1")));
    // The code works once.
    assert_problem(exchange(app, &back).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;

    // The next login finds the same account.
    let again = Tokens::from(&exchange(app, &login_at(app, "op").await).await.json::<Value>().await.unwrap());
    assert_eq!(claims_of(&again.access)["sub"], claims_of(&t.access)["sub"]);
    assert_eq!(users(app).await, before + 1);
    let events = app.svc().audit.mine(me["id"].as_str().unwrap().parse().unwrap(), 50).await.unwrap();
    assert!(events.iter().any(|e| e.event == "user.logged_in" && e.details["method"] == "oauth:op"), "{events:?}");
    assert!(events.iter().any(|e| e.event == "user.identity_linked"));

    // The callback replayed, or reached from a browser that did not start the login: refused.
    let b = browser();
    let start = b.get(start_url(app, "op", APP)).send().await.unwrap();
    let mut next = start.headers()["location"].to_str().unwrap().to_owned();
    let callback = loop {
        let r = b.get(&next).send().await.unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        let loc = url::Url::parse(&next).unwrap().join(&loc).unwrap().to_string();
        if loc.contains("/v1/auth/oauth/op/callback") {
            break loc;
        }
        next = loc;
    };
    assert_problem(browser().get(&callback).send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_state")
        .await;
    // The stranger's attempt spent the state: the real browser is refused too.
    assert_problem(b.get(&callback).send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_state").await;
    let reasons = failures(app).await;
    assert!(
        reasons.iter().any(|r| r == "state_not_bound_to_browser") && reasons.iter().any(|r| r == "unknown_state"),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_a_real_openid_provider() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let app = authd_with(port, vec![("op", op_config(&op))], |_| {}).await;
    oidc_story(&app, &op).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_a_real_openid_provider_on_postgres() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let Some(url) = crate::support::postgres_db().await else { return };
    let app = authd_with(port, vec![("op", op_config(&op))], |c| crate::support::use_postgres(c, &url)).await;
    oidc_story(&app, &op).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_linked_only_as_far_as_the_provider_vouches() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let sink = crate::support::MailSink::start().await;
    let app = authd_with(port, vec![("op", op_config(&op))], |c| {
        c.oauth.link_by_verified_email = true;
        sink.configure(c);
        c.verification.email = authd::config::VerifyMode::Optional;
    })
    .await;
    let owner = register_confirmed(&app, &sink, "olaf@example.com").await;
    let users_before = users(&app).await;

    // An unverified email matching an account: no takeover; an account of its own, without the
    // email, which the identity keeps for display only.
    op.next(json!({"sub": "mallory", "email": "olaf@example.com", "email_verified": false})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let m = Tokens::from(&r.json::<Value>().await.unwrap());
    assert_ne!(claims_of(&m.access)["sub"], owner["id"]);
    let me: Value = app.get_auth("/v1/me", &m.access).await.json().await.unwrap();
    assert!(me["email"].is_null(), "{me}");
    let ids: Value = app.get_auth("/v1/me/identities", &m.access).await.json().await.unwrap();
    assert_eq!((ids[0]["email"].as_str(), &ids[0]["email_verified"]), (Some("olaf@example.com"), &json!(false)));
    assert_eq!(users(&app).await, users_before + 1);
    let t = Tokens::from(&app.login("olaf@example.com", PASSWORD).await);
    let ids: Value = app.get_auth("/v1/me/identities", &t.access).await.json().await.unwrap();
    assert_eq!(ids, json!([]));

    // A verified one joins the account, which confirmed the email too (link_by_verified_email is
    // on), and the owner is told.
    op.next(json!({"sub": "olaf-at-op", "email": "olaf@example.com", "email_verified": true})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t2 = Tokens::from(&r.json::<Value>().await.unwrap());
    assert_eq!(claims_of(&t2.access)["sub"], owner["id"]);
    let notice = sink.nth_to("olaf@example.com", 2).await;
    assert!(notice.subject.contains("Test OP") && notice.text.contains("linked"), "{notice:?}");

    // Unlinking works while a password remains; an account with only the provider keeps it.
    let ids: Value = app.get_auth("/v1/me/identities", &t.access).await.json().await.unwrap();
    let id = ids[0]["id"].as_str().unwrap();
    let r = call(&app, &t.access, Method::DELETE, &format!("/v1/me/identities/{id}"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    op.next(json!({"sub": "solo", "email": "solo@example.com", "email_verified": true})).await;
    let solo = Tokens::from(&exchange(&app, &login_at(&app, "op").await).await.json::<Value>().await.unwrap());
    let ids: Value = app.get_auth("/v1/me/identities", &solo.access).await.json().await.unwrap();
    let r = call(
        &app,
        &solo.access,
        Method::DELETE,
        &format!("/v1/me/identities/{}", ids[0]["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_problem(r, StatusCode::CONFLICT, "last_login_method").await;
    // Someone else's identity is not found.
    let r =
        call(&app, &t.access, Method::DELETE, &format!("/v1/me/identities/{}", ids[0]["id"].as_str().unwrap()), None)
            .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_links_a_provider_and_denied_consent_comes_back_as_an_error() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let app = authd_with(port, vec![("op", op_config(&op))], |c| c.oauth.signup = false).await;
    app.register("pia@example.com").await;
    let t = Tokens::from(&app.login("pia@example.com", PASSWORD).await);

    // Sign-up is off: a stranger gets no account.
    op.next(json!({"sub": "stranger", "email": "stranger@example.com", "email_verified": true})).await;
    let before = users(&app).await;
    assert_problem(exchange(&app, &login_at(&app, "op").await).await, StatusCode::FORBIDDEN, "identity_not_linked")
        .await;
    assert_eq!(users(&app).await, before);

    // Linking from the account, in the browser that started it.
    op.next(json!({"sub": "pia-at-op", "email": "pia.other@example.com", "email_verified": false})).await;
    let b = browser();
    let r = b
        .post(app.url("/v1/me/identities/op/start"))
        .bearer_auth(&t.access)
        .json(&json!({"redirect_uri": APP}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let go = r.json::<Value>().await.unwrap()["authorization_url"].as_str().unwrap().to_owned();
    let back = until_app(&b, &go).await;
    assert_eq!(param(&back, "linked").as_deref(), Some("op"));
    // Now the provider signs in to this account, even with sign-up off.
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(claims_of(&Tokens::from(&r.json::<Value>().await.unwrap()).access)["sub"], claims_of(&t.access)["sub"]);

    // The same provider account cannot be linked to a second user.
    app.register("quin@example.com").await;
    let q = Tokens::from(&app.login("quin@example.com", PASSWORD).await);
    let b = browser();
    let r = b
        .post(app.url("/v1/me/identities/op/start"))
        .bearer_auth(&q.access)
        .json(&json!({"redirect_uri": APP}))
        .send()
        .await
        .unwrap();
    let go = r.json::<Value>().await.unwrap()["authorization_url"].as_str().unwrap().to_owned();
    assert_eq!(param(&until_app(&b, &go).await, "error").as_deref(), Some("identity_in_use"));

    // The user says no at the provider.
    op.next(json!({"deny": true})).await;
    let back = login_at(&app, "op").await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert!(param(&back, "code").is_none());
    assert!(failures(&app).await.contains(&"access_denied".to_owned()));

    // An admin sees identities; the operator's CLI shows and unlinks them.
    let admin = app.admin("root@example.com").await;
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    let path = format!("/v1/admin/users/{}/identities", me["id"].as_str().unwrap());
    let ids: Value = call(&app, &admin.access, Method::GET, &path, None).await.json().await.unwrap();
    assert_eq!(ids.as_array().unwrap().len(), 1);
    let id = ids[0]["id"].as_str().unwrap();
    let shown = crate::support::binary::ok(app.dir.path(), &["user", "show", "pia@example.com"], None).await;
    assert!(shown.contains(&format!("identity:  {id} op:pia-at-op")), "{shown}");
    let out = crate::support::binary::ok(app.dir.path(), &["user", "unlink", "pia@example.com", id], None).await;
    assert!(out.starts_with("provider unlinked: pia@example.com"), "{out}");
    let ids: Value = call(&app, &admin.access, Method::GET, &path, None).await.json().await.unwrap();
    assert_eq!(ids, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_applies_to_external_logins_too() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let app = authd_with(port, vec![("op", op_config(&op))], |_| {}).await;
    op.next(json!({"sub": "rhea", "email": "rhea@example.com", "email_verified": true})).await;
    let t = Tokens::from(&exchange(&app, &login_at(&app, "op").await).await.json::<Value>().await.unwrap());
    let r = call(&app, &t.access, Method::POST, "/v1/me/mfa/totp", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let admin = app.admin("root@example.com").await;
    let r = call(&app, &admin.access, Method::PATCH, "/v1/admin/roles/user", Some(json!({"require_mfa": true}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let p = assert_problem(
        exchange(&app, &login_at(&app, "op").await).await,
        StatusCode::FORBIDDEN,
        "mfa_enrolment_required",
    )
    .await;
    assert!(p["mfa_token"].is_string());
}

// ---- A fake provider for what a real one never does ----

/// A code the fake handed out: (code, nonce, PKCE challenge, used).
type Issued = (String, String, String, bool);

#[derive(Clone)]
struct Fake {
    base: Arc<Mutex<String>>,
    mode: Arc<Mutex<&'static str>>,
    codes: Arc<Mutex<Vec<Issued>>>,
    key: Arc<ring::signature::Ed25519KeyPair>,
    other: Arc<ring::signature::Ed25519KeyPair>,
    emails: Arc<Mutex<Value>>,
}

impl Fake {
    fn base(&self) -> String {
        self.base.lock().unwrap().clone()
    }

    fn mode(&self) -> &'static str {
        *self.mode.lock().unwrap()
    }

    fn set(&self, mode: &'static str) {
        *self.mode.lock().unwrap() = mode;
    }
}

fn keypair() -> ring::signature::Ed25519KeyPair {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

#[handler]
fn discovery(f: Data<&Fake>) -> PoemJson<Value> {
    let b = f.base();
    PoemJson(json!({
        "issuer": b, "authorization_endpoint": format!("{b}/authorize"), "token_endpoint": format!("{b}/token"),
        "jwks_uri": format!("{b}/jwks"), "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"]
    }))
}

#[handler]
fn jwks(f: Data<&Fake>) -> PoemJson<Value> {
    let jwk = |k: &ring::signature::Ed25519KeyPair, kid: &str| json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.public_key().as_ref()), "kid": kid, "use": "sig", "alg": "EdDSA"});
    // After a rotation the provider publishes its new key too.
    let keys = if f.mode() == "rotated" {
        json!([jwk(&f.key, "k1"), jwk(&f.other, "k2")])
    } else {
        json!([jwk(&f.key, "k1")])
    };
    PoemJson(json!({"keys": keys}))
}

#[derive(serde::Deserialize)]
struct AuthorizeQuery {
    state: String,
    redirect_uri: String,
    #[serde(default)]
    nonce: String,
    code_challenge: String,
}

#[handler]
fn authorize(f: Data<&Fake>, Query(q): Query<AuthorizeQuery>) -> Response {
    let code = format!("code-{}", uuid::Uuid::now_v7().simple());
    f.codes.lock().unwrap().push((code.clone(), q.nonce, q.code_challenge, false));
    let iss = if f.mode() == "wrong_iss_param" { "http://evil.example".to_owned() } else { f.base() };
    let mut to = url::Url::parse(&q.redirect_uri).unwrap();
    to.query_pairs_mut().append_pair("code", &code).append_pair("state", &q.state).append_pair("iss", &iss);
    Response::builder().status(PoemStatus::FOUND).header("location", to.as_str()).finish()
}

fn sign(key: &ring::signature::Ed25519KeyPair, alg: &str, kid: &str, claims: &Value) -> String {
    let header = B64.encode(json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string());
    let body = B64.encode(claims.to_string());
    let input = format!("{header}.{body}");
    let sig = match alg {
        "none" => String::new(),
        "HS256" => {
            // HMAC with the public key as the secret: the classic confusion attack.
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.public_key().as_ref());
            B64.encode(ring::hmac::sign(&k, input.as_bytes()))
        }
        _ => B64.encode(key.sign(input.as_bytes())),
    };
    format!("{input}.{sig}")
}

#[handler]
async fn token(f: Data<&Fake>, req: &Request, Form(form): Form<std::collections::HashMap<String, String>>) -> Response {
    let mode = f.mode();
    // The client authenticates in the form (client_secret_post) or with Basic.
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    let by_basic = req.header("authorization") == Some(basic.as_str());
    if mode == "refuse_code" {
        return Response::builder().status(PoemStatus::BAD_REQUEST).body(r#"{"error":"invalid_grant"}"#);
    }
    if mode == "down" {
        return Response::builder().status(PoemStatus::BAD_GATEWAY).finish();
    }
    if mode == "slow" {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    if !by_basic && form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
        return Response::builder().status(PoemStatus::UNAUTHORIZED).body(r#"{"error":"invalid_client"}"#);
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let found = {
        let mut codes = f.codes.lock().unwrap();
        codes.iter_mut().find(|c| c.0 == code).map(|c| {
            let fresh = !c.3;
            c.3 = true;
            (c.1.clone(), c.2.clone(), fresh)
        })
    };
    let Some((nonce, challenge, fresh)) = found else {
        return Response::builder().status(PoemStatus::BAD_REQUEST).body(r#"{"error":"invalid_grant"}"#);
    };
    let computed = B64.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    if !fresh || computed != challenge {
        return Response::builder().status(PoemStatus::BAD_REQUEST).body(r#"{"error":"invalid_grant"}"#);
    }
    let now = authd::model::now();
    let mut c = json!({"iss": f.base(), "aud": CLIENT_ID, "sub": "fake-1", "exp": now + 300, "iat": now,
                       "nonce": nonce, "email": "fay@example.com", "email_verified": true});
    let (key, alg, kid) = match mode {
        "wrong_nonce" => {
            c["nonce"] = json!("not-the-nonce");
            (&f.key, "EdDSA", "k1")
        }
        "wrong_aud" => {
            c["aud"] = json!("someone-else");
            (&f.key, "EdDSA", "k1")
        }
        "expired" => {
            c["exp"] = json!(now - 3600);
            c["iat"] = json!(now - 7200);
            (&f.key, "EdDSA", "k1")
        }
        "unknown_key" | "rotated" => (&f.other, "EdDSA", "k2"),
        "alg_none" => (&f.key, "none", "k1"),
        "hs256" => (&f.key, "HS256", "k1"),
        _ => (&f.key, "EdDSA", "k1"),
    };
    let body = json!({"access_token": "fake-access", "token_type": "Bearer", "id_token": sign(key, alg, kid, &c)});
    Response::builder().content_type("application/json").body(body.to_string())
}

#[handler]
fn gh_user(req: &Request) -> Response {
    if req.header("authorization") != Some("Bearer fake-access") {
        return Response::builder().status(PoemStatus::UNAUTHORIZED).finish();
    }
    Response::builder()
        .content_type("application/json")
        .body(json!({"id": 4242, "login": "octo", "name": "Octo Cat"}).to_string())
}

#[handler]
fn gh_emails(f: Data<&Fake>) -> PoemJson<Value> {
    PoemJson(f.emails.lock().unwrap().clone())
}

#[handler]
fn fb_me() -> PoemJson<Value> {
    PoemJson(json!({"id": "10001", "name": "Fe Book", "email": "fe@example.com"}))
}

async fn start_fake() -> Fake {
    let fake = Fake {
        base: Arc::default(),
        mode: Arc::new(Mutex::new("good")),
        codes: Arc::default(),
        key: Arc::new(keypair()),
        other: Arc::new(keypair()),
        emails: Arc::new(Mutex::new(json!([]))),
    };
    let app = Route::new()
        .at("/.well-known/openid-configuration", poem::get(discovery))
        .at("/jwks", poem::get(jwks))
        .at("/authorize", poem::get(authorize))
        .at("/token", poem::post(token))
        .at("/user", poem::get(gh_user))
        .at("/user/emails", poem::get(gh_emails))
        .at("/me", poem::get(fb_me))
        .data(fake.clone());
    let addr = serve_fake(app).await;
    *fake.base.lock().unwrap() = format!("http://{addr}");
    fake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_that_fail_a_check_are_refused_and_nothing_is_stored() {
    let fake = start_fake().await;
    let mut p = provider(ProviderKind::Oidc);
    p.issuer = Some(fake.base());
    // Time for every answer on a busy machine, and shorter than the slow one's wait.
    let app = authd_with(free_port(), vec![("fake", p)], |c| c.oauth.timeout = HumanDuration::secs(3)).await;
    for (mode, error, reason) in [
        ("wrong_nonce", "invalid_id_token", "nonce does not match"),
        ("wrong_aud", "invalid_id_token", "meant for another audience"),
        ("expired", "invalid_id_token", "expired"),
        ("unknown_key", "invalid_id_token", "unknown signing key"),
        ("alg_none", "invalid_id_token", "signing algorithm not accepted"),
        ("hs256", "invalid_id_token", "signing algorithm not accepted"),
        ("wrong_iss_param", "invalid_issuer", "issuer_mismatch"),
        ("down", "temporarily_unavailable", "temporarily_unavailable"),
        ("refuse_code", "invalid_grant", "invalid_grant"),
        ("slow", "temporarily_unavailable", "temporarily_unavailable"),
    ] {
        fake.set(mode);
        let before = users(&app).await;
        let back = login_at(&app, "fake").await;
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{mode}");
        assert!(param(&back, "code").is_none(), "{mode}");
        assert_eq!(users(&app).await, before, "{mode}: nothing stored");
        assert!(failures(&app).await.iter().any(|r| r == reason), "{mode}: audited as {reason}");
    }
    // The same provider, behaving: PKCE and client_secret_post (as its discovery asks) pass.
    fake.set("good");
    let r = exchange(&app, &login_at(&app, "fake").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    // It rotates its key: the new one is fetched when a token names it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fake.set("rotated");
    let r = exchange(&app, &login_at(&app, "fake").await).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_oauth2_provider_maps_its_user_info_and_its_users_may_add_a_password() {
    let fake = start_fake().await;
    let b = fake.base();
    let mut p = provider(ProviderKind::Oauth2);
    p.authorize_url = Some(format!("{b}/authorize"));
    p.token_url = Some(format!("{b}/token"));
    p.userinfo_url = Some(format!("{b}/user"));
    p.claims.subject = "login".into();
    let sink = crate::support::MailSink::start().await;
    let app = authd_with(free_port(), vec![("forge", p)], |c| sink.configure(c)).await;
    let r = exchange(&app, &login_at(&app, "forge").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t = Tokens::from(&r.json::<Value>().await.unwrap());
    let ids: Value = app.get_auth("/v1/me/identities", &t.access).await.json().await.unwrap();
    assert_eq!((ids[0]["subject"].as_str(), ids[0]["name"].as_str()), (Some("octo"), Some("Octo Cat")));

    // A user who came from a provider sets a password through the reset flow.
    let r = call(&app, &t.access, Method::PATCH, "/v1/me", Some(json!({"email": "forge-user@example.com"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.post("/v1/auth/password/forgot", &json!({"login": "forge-user@example.com"})).await.status(),
        StatusCode::ACCEPTED
    );
    let link_token = sink.first_to("forge-user@example.com").await.token("http://");
    let r = app.post("/v1/auth/password/reset", &json!({"token": link_token, "new_password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let t = Tokens::from(&app.login("forge-user@example.com", PASSWORD).await);
    // The reset was the first proof of a name: identities linked before it are unlinked (an
    // attacker's, on an account made in someone else's name, would be).
    let ids: Value = app.get_auth("/v1/me/identities", &t.access).await.json().await.unwrap();
    assert_eq!(ids, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_counts_only_verified_emails_and_facebook_none() {
    let fake = start_fake().await;
    let b = fake.base();
    let mut gh = provider(ProviderKind::Github);
    gh.authorize_url = Some(format!("{b}/authorize"));
    gh.token_url = Some(format!("{b}/token"));
    gh.userinfo_url = Some(format!("{b}/user"));
    gh.emails_url = Some(format!("{b}/user/emails"));
    let mut fb = provider(ProviderKind::Facebook);
    fb.authorize_url = Some(format!("{b}/authorize"));
    fb.token_url = Some(format!("{b}/token"));
    fb.userinfo_url = Some(format!("{b}/me"));
    let app =
        authd_with(free_port(), vec![("github", gh), ("facebook", fb)], |c| c.oauth.link_by_verified_email = true)
            .await;
    app.register("octo@example.com").await;
    app.register("fe@example.com").await;

    // An unverified address that matches an account is not used to join it.
    *fake.emails.lock().unwrap() = json!([
        {"email": "octo@example.com", "verified": false, "primary": true},
        {"email": "octo@work.example", "verified": true, "primary": false}
    ]);
    let r = exchange(&app, &login_at(&app, "github").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t = Tokens::from(&r.json::<Value>().await.unwrap());
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!((me["email"].as_str(), &me["email_verified"]), (Some("octo@work.example"), &json!(true)));
    let ids: Value = app.get_auth("/v1/me/identities", &t.access).await.json().await.unwrap();
    assert_eq!((ids[0]["provider"].as_str(), ids[0]["subject"].as_str()), (Some("github"), Some("4242")));

    // Facebook's email is never taken as verified: it joins nothing, even the account that has
    // it, and names no account; the identity keeps it for display.
    let r = exchange(&app, &login_at(&app, "facebook").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let f = Tokens::from(&r.json::<Value>().await.unwrap());
    let me: Value = app.get_auth("/v1/me", &f.access).await.json().await.unwrap();
    assert!(me["email"].is_null(), "{me}");
    let ids: Value = app.get_auth("/v1/me/identities", &f.access).await.json().await.unwrap();
    assert_eq!((ids[0]["email"].as_str(), &ids[0]["email_verified"]), (Some("fe@example.com"), &json!(false)));
    let fe = Tokens::from(&app.login("fe@example.com", PASSWORD).await);
    assert_ne!(claims_of(&fe.access)["sub"], claims_of(&f.access)["sub"]);
}

#[tokio::test]
async fn a_provider_without_what_its_kind_needs_stops_the_server_at_start() {
    let mut cfg = authd::config::Config::default();
    cfg.oauth.providers.insert("corp".into(), provider(ProviderKind::Oidc));
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("oauth.providers.corp.issuer"), "{err}");
    let mut cfg = authd::config::Config::default();
    cfg.oauth.providers.insert("x".into(), provider(ProviderKind::Oauth2));
    assert!(cfg.validate().unwrap_err().to_string().contains("oauth.providers.x"));
    let mut cfg = authd::config::Config::default();
    cfg.oauth.allowed_redirects = vec!["https://user@app.example/cb".into()];
    assert!(cfg.validate().unwrap_err().to_string().contains("oauth.allowed_redirects"));
}

/// A replayed redirect: two callbacks race with one `state`. The state is found and burned in one
/// step, so exactly one gets past it; the other is refused as an unknown state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_state_is_spent_once_even_by_racing_callbacks() {
    let fake = start_fake().await;
    let mut p = provider(ProviderKind::Oidc);
    p.issuer = Some(fake.base());
    let app = authd_with(free_port(), vec![("fake", p)], |_| {}).await;
    fake.set("good");
    for round in 0..10 {
        let b = browser();
        let mut next = start_url(&app, "fake", APP);
        let callback = loop {
            let r = b.get(&next).send().await.unwrap();
            let loc = r.headers().get("location").unwrap().to_str().unwrap().to_owned();
            let loc = url::Url::parse(&next).unwrap().join(&loc).unwrap().to_string();
            if loc.contains("/v1/auth/oauth/fake/callback") {
                break loc;
            }
            next = loc;
        };
        let (first, second) = tokio::join!(b.get(&callback).send(), b.get(&callback).send());
        let mut passed = 0;
        for r in [first.unwrap(), second.unwrap()] {
            if r.status().is_redirection() {
                passed += 1;
            } else {
                assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_state").await;
            }
        }
        assert_eq!(passed, 1, "round {round}: one state, one callback past it");
    }
}
