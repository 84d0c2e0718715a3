//! Account takeover through login with upstream providers, and what closes it: each story plays
//! the attack through the real interface (a real OpenID provider, a real browser's cookies, the
//! application's exchange) and fails on the code that had the hole.

use std::time::Duration;

use authd::config::{AppPkce, HumanDuration, Limit, ProviderKind, VerifyMode};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    MailSink, PASSWORD, RealOp, TestApp, Tokens, assert_problem, call, claims_of, free_port,
    oidc::{
        APP, CHALLENGE, CLIENT_ID, CLIENT_SECRET, VERIFIER, authd_with, browser, exchange, exchange_with, failures,
        login_at, op_config, param, provider, register_confirmed, start_url, start_url_with, until_app, users,
    },
};

/// The signed-in user's account.
async fn me(app: &TestApp, access: &str) -> Value {
    app.get_auth("/v1/me", access).await.json().await.unwrap()
}

/// Links the real provider to the user signed in with `access`, in a browser of their own:
/// `None` once linked, or the refusal of the start.
async fn link_op(app: &TestApp, access: &str) -> Option<reqwest::Response> {
    let b = browser();
    let r = b
        .post(app.url("/v1/me/identities/op/start"))
        .bearer_auth(access)
        .json(&json!({"redirect_uri": APP}))
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::OK {
        return Some(r);
    }
    let go = r.json::<Value>().await.unwrap()["authorization_url"].as_str().unwrap().to_owned();
    let back = until_app(&b, &go).await;
    assert_eq!(param(&back, "linked").as_deref(), Some("op"), "{back}");
    None
}

/// Item 2a: A provider that does not vouch for an email (Facebook always; an OpenID provider saying
/// `email_verified: false`) used to make that email the new account's login name: the owner of the
/// address would later recover "her" account by it, and the attacker's identity still opened it.
/// Now such an email names nothing; the identity keeps it for display only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_the_provider_does_not_vouch_for_never_becomes_a_login_name() {
    an_email_the_provider_does_not_vouch_for_never_becomes_a_login_name_story(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_the_provider_does_not_vouch_for_never_becomes_a_login_name_on_postgres() {
    let Some(url) = crate::support::postgres_db().await else { return };
    an_email_the_provider_does_not_vouch_for_never_becomes_a_login_name_story(Some(url)).await;
}

async fn an_email_the_provider_does_not_vouch_for_never_becomes_a_login_name_story(postgres: Option<String>) {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let sink = MailSink::start().await;
    let app = authd_with(port, vec![("op", op_config(&op))], |c| {
        sink.configure(c);
        if let Some(url) = &postgres {
            crate::support::use_postgres(c, url);
        }
    })
    .await;

    // Mallory's provider account claims Vera's address, unverified.
    op.next(json!({"sub": "mallory-op", "email": "vera@example.com", "email_verified": false})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mallory = Tokens::from(&r.json::<Value>().await.unwrap());
    let account = me(&app, &mallory.access).await;
    assert!(account["email"].is_null(), "an unvouched email named the account: {account}");
    let ids: Value = app.get_auth("/v1/me/identities", &mallory.access).await.json().await.unwrap();
    assert_eq!((ids[0]["email"].as_str(), &ids[0]["email_verified"]), (Some("vera@example.com"), &json!(false)));

    // The address is still Vera's to register, and what she recovers by it is her own account.
    let vera = app.register("vera@example.com").await;
    let r = app.post("/v1/auth/password/forgot", &json!({"login": "vera@example.com"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let token = sink.first_to("vera@example.com").await.token("http://");
    let new_password = "another correct horse battery";
    let r = app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": new_password})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let recovered = Tokens::from(&app.login("vera@example.com", new_password).await);
    assert_eq!(claims_of(&recovered.access)["sub"], vera["id"]);

    // Mallory's identity opens Mallory's account, never Vera's.
    op.next(json!({"sub": "mallory-op", "email": "vera@example.com", "email_verified": false})).await;
    let again = Tokens::from(&exchange(&app, &login_at(&app, "op").await).await.json::<Value>().await.unwrap());
    assert_eq!(claims_of(&again.access)["sub"], account["id"]);
    assert_ne!(claims_of(&again.access)["sub"], vera["id"]);
    let ids: Value = app.get_auth("/v1/me/identities", &recovered.access).await.json().await.unwrap();
    assert_eq!(ids, json!([]));
}

/// Item 2b: With `link_by_verified_email`, a victim's vouched login used to join an account that an
/// attacker had registered with the victim's address and never confirmed: the attacker's password
/// kept working on the victim's account. Linking by email now needs the account to have proven the
/// address too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vouched_login_never_joins_an_account_that_did_not_prove_the_email() {
    a_vouched_login_never_joins_an_account_that_did_not_prove_the_email_story(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vouched_login_never_joins_an_account_that_did_not_prove_the_email_on_postgres() {
    let Some(url) = crate::support::postgres_db().await else { return };
    a_vouched_login_never_joins_an_account_that_did_not_prove_the_email_story(Some(url)).await;
}

async fn a_vouched_login_never_joins_an_account_that_did_not_prove_the_email_story(postgres: Option<String>) {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let sink = MailSink::start().await;
    let app = authd_with(port, vec![("op", op_config(&op))], |c| {
        c.oauth.link_by_verified_email = true;
        sink.configure(c);
        c.verification.email = VerifyMode::Optional;
        if let Some(url) = &postgres {
            crate::support::use_postgres(c, url);
        }
    })
    .await;
    // Mallory pre-registers Wendy's address with a password of her own, and never confirms it.
    let planted = app.register("wendy@example.com").await;
    let before = users(&app).await;

    op.next(json!({"sub": "wendy-op", "email": "wendy@example.com", "email_verified": true})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_problem(r, StatusCode::FORBIDDEN, "identity_not_linked").await;
    assert_eq!(users(&app).await, before);
    let m = Tokens::from(&app.login("wendy@example.com", PASSWORD).await);
    assert_eq!(claims_of(&m.access)["sub"], planted["id"]);
    let ids: Value = app.get_auth("/v1/me/identities", &m.access).await.json().await.unwrap();
    assert_eq!(ids, json!([]), "Wendy's identity joined Mallory's unconfirmed account");
    assert!(failures(&app).await.contains(&"account_exists_link_required".to_owned()));

    // An account that confirmed its address is joined by the same kind of login.
    let owner = register_confirmed(&app, &sink, "xena@example.com").await;
    op.next(json!({"sub": "xena-op", "email": "xena@example.com", "email_verified": true})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(claims_of(&Tokens::from(&r.json::<Value>().await.unwrap()).access)["sub"], owner["id"]);
}

/// Item 7: Linking and unlinking a provider used to need any valid token, however old, and told
/// nobody. Now both need a recent sign-in, and the owner is mailed when a provider is linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_needs_a_recent_sign_in_and_the_owner_is_told() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let sink = MailSink::start().await;
    let app = authd_with(port, vec![("op", op_config(&op))], |c| {
        sink.configure(c);
        c.security.step_up_window = HumanDuration::secs(5);
    })
    .await;
    app.register("yuri@example.com").await;
    let old = Tokens::from(&app.login("yuri@example.com", PASSWORD).await);
    tokio::time::sleep(Duration::from_millis(6100)).await;

    // A token older than the window (a stolen one, say) adds no way in.
    op.next(json!({"sub": "mallory-op", "email": "mallory@example.com", "email_verified": true})).await;
    let refused = link_op(&app, &old.access).await.expect("refused");
    assert_problem(refused, StatusCode::UNAUTHORIZED, "step_up_required").await;

    // A fresh sign-in links, and the account's address hears of it.
    let fresh = Tokens::from(&app.login("yuri@example.com", PASSWORD).await);
    assert!(link_op(&app, &fresh.access).await.is_none());
    let notice = sink.first_to("yuri@example.com").await;
    assert!(notice.subject.contains("Test OP"), "{}", notice.subject);
    assert!(notice.text.contains("linked") && notice.text.contains("unlink"), "{}", notice.text);

    // Unlinking needs a recent sign-in too.
    let ids: Value = app.get_auth("/v1/me/identities", &fresh.access).await.json().await.unwrap();
    let path = format!("/v1/me/identities/{}", ids[0]["id"].as_str().unwrap());
    assert_problem(
        call(&app, &old.access, Method::DELETE, &path, None).await,
        StatusCode::UNAUTHORIZED,
        "step_up_required",
    )
    .await;
    let ids: Value = app.get_auth("/v1/me/identities", &fresh.access).await.json().await.unwrap();
    assert_eq!(ids.as_array().unwrap().len(), 1);
    let now = Tokens::from(&app.login("yuri@example.com", PASSWORD).await);
    assert_eq!(call(&app, &now.access, Method::DELETE, &path, None).await.status(), StatusCode::NO_CONTENT);
}

/// Item 10: Login CSRF: the exchange code was not bound to the application that started the login,
/// so an attacker could finish a login of their own and plant its code in a victim's browser, which
/// the application then exchanged, signing the victim in as the attacker. Now the application's
/// PKCE verifier must answer the challenge it gave at the start; a code presented without it is
/// refused and spent.
async fn login_csrf_story(app: TestApp, op: &RealOp) {
    // No challenge, or a method other than S256: refused before anyone is sent anywhere.
    for (extra, field) in [
        (vec![], "code_challenge"),
        (vec![("code_challenge", CHALLENGE)], "code_challenge_method"),
        (vec![("code_challenge", CHALLENGE), ("code_challenge_method", "plain")], "code_challenge_method"),
        (vec![("code_challenge", "short"), ("code_challenge_method", "S256")], "code_challenge"),
    ] {
        let r = browser().get(start_url_with(&app, "op", APP, &extra)).send().await.unwrap();
        assert!(r.headers().get("location").is_none(), "{extra:?}");
        let p = assert_problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(p["errors"][0]["field"], field, "{extra:?}");
    }

    // Mallory finishes a login of her own, with her own verifier, and plants the code.
    let mallory_verifier = "mallory-verifier-mallory-verifier-mallory-verifier";
    let mallory_challenge = B64.encode(ring::digest::digest(&ring::digest::SHA256, mallory_verifier.as_bytes()));
    for planted_with in [Some(VERIFIER), None] {
        op.next(json!({"sub": "mallory-op", "email": "mallory@example.com", "email_verified": true})).await;
        let pkce = [("code_challenge", mallory_challenge.as_str()), ("code_challenge_method", "S256")];
        let planted = until_app(&browser(), &start_url_with(&app, "op", APP, &pkce)).await;
        // The victim's application exchanges it with its own verifier, or none: refused…
        assert_problem(
            exchange_with(&app, &planted, planted_with).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
        )
        .await;
        // …and spent: not even Mallory's verifier brings it back.
        assert_problem(
            exchange_with(&app, &planted, Some(mallory_verifier)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
        )
        .await;
    }
    assert!(failures(&app).await.iter().filter(|r| *r == "code_verifier_mismatch").count() >= 2);

    // The application's own login, with its own verifier, goes through.
    op.next(json!({"sub": "zoe-op", "email": "zoe@example.com", "email_verified": true})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(r.status(), StatusCode::OK);

    // `optional`, for applications not yet updated: a login started without a challenge is
    // exchanged without a verifier; one started with a challenge still needs its verifier.
    let app = app.restart_with(|c| c.oauth.app_pkce = AppPkce::Optional).await;
    op.next(json!({"sub": "zoe-op", "email": "zoe@example.com", "email_verified": true})).await;
    let bare = until_app(&browser(), &start_url_with(&app, "op", APP, &[])).await;
    assert_eq!(exchange_with(&app, &bare, None).await.status(), StatusCode::OK);
    let bound = login_at(&app, "op").await;
    assert_problem(exchange_with(&app, &bound, None).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_code_works_only_with_the_verifier_of_the_application_that_started_the_login() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    login_csrf_story(authd_with(port, vec![("op", op_config(&op))], |_| {}).await, &op).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_code_works_only_with_the_verifier_of_the_application_that_started_the_login_on_postgres() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let Some(url) = crate::support::postgres_db().await else { return };
    let app = authd_with(port, vec![("op", op_config(&op))], |c| crate::support::use_postgres(c, &url)).await;
    login_csrf_story(app, &op).await;
}

/// Item 11: An upstream login into an account whose email was never confirmed used to get tokens
/// while `verification.email = "required"`; a password login is refused there. Now an upstream
/// login is refused the same way, unless the provider vouches for that very address, which proves
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_login_is_refused_where_a_required_confirmation_is_missing() {
    an_upstream_login_is_refused_where_a_required_confirmation_is_missing_story(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_login_is_refused_where_a_required_confirmation_is_missing_on_postgres() {
    let Some(url) = crate::support::postgres_db().await else { return };
    an_upstream_login_is_refused_where_a_required_confirmation_is_missing_story(Some(url)).await;
}

async fn an_upstream_login_is_refused_where_a_required_confirmation_is_missing_story(postgres: Option<String>) {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let sink = MailSink::start().await;
    let app = authd_with(port, vec![("op", op_config(&op))], |c| {
        sink.configure(c);
        c.verification.email = VerifyMode::Optional;
        if let Some(url) = &postgres {
            crate::support::use_postgres(c, url);
        }
    })
    .await;
    // Una signs up while confirmation is optional, never confirms, and links a provider.
    app.register("una@example.com").await;
    let t = Tokens::from(&app.login("una@example.com", PASSWORD).await);
    op.next(json!({"sub": "una-op", "email": "una.elsewhere@example.com", "email_verified": true})).await;
    assert!(link_op(&app, &t.access).await.is_none());

    // Then confirmation becomes required.
    let app = app.restart_with(|c| c.verification.email = VerifyMode::Required).await;
    // A password login there answers like a wrong password (so that a taken address is not told
    // from a new one); the provider's user, who holds a linked identity, is told why.
    let r = app.post("/v1/auth/login", &json!({"login": "una@example.com", "password": PASSWORD})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    op.next(json!({"sub": "una-op", "email": "una.elsewhere@example.com", "email_verified": true})).await;
    assert_problem(exchange(&app, &login_at(&app, "op").await).await, StatusCode::FORBIDDEN, "email_unverified").await;

    // An unvouched claim of the account's own address proves nothing.
    op.next(json!({"sub": "una-op", "email": "una@example.com", "email_verified": false})).await;
    assert_problem(exchange(&app, &login_at(&app, "op").await).await, StatusCode::FORBIDDEN, "email_unverified").await;

    // The provider vouching for the account's own address proves it, as a mailed link would.
    op.next(json!({"sub": "una-op", "email": "una@example.com", "email_verified": true})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t = Tokens::from(&r.json::<Value>().await.unwrap());
    assert_eq!(me(&app, &t.access).await["email_verified"], json!(true));
    app.login("una@example.com", PASSWORD).await;
}

/// Item 12: The exchange used to answer 409 `account_exists_link_required` when an account had the
/// provider's email, and something else when none had: anyone with a provider account claiming an
/// address learned whether it had an account here. Now whether an account has the email changes no
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_never_tells_whether_an_account_has_an_email() {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let app = authd_with(port, vec![("op", op_config(&op))], |_| {}).await;
    app.register("kim@example.com").await;

    // The answer to a login claiming `email` (vouched for or not) by a provider account of its own.
    async fn answer(app: &TestApp, op: &RealOp, sub: &str, email: &str, vouched: bool) -> (StatusCode, Value) {
        op.next(json!({"sub": sub, "email": email, "email_verified": vouched})).await;
        let r = exchange(app, &login_at(app, "op").await).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        // Tokens differ from login to login; what they stand for must not.
        let shape = if status == StatusCode::OK { json!("tokens") } else { body };
        (status, shape)
    }

    // Sign-up on: a claim nobody vouched for makes an account of its own either way.
    let (taken, free) = (
        answer(&app, &op, "m-1", "kim@example.com", false).await,
        answer(&app, &op, "m-2", "nobody@example.com", false).await,
    );
    assert_eq!(taken, free, "an unvouched claim of a taken address");
    assert_eq!(taken.0, StatusCode::OK);

    // Sign-up off: the same refusal whether or not an account has the address.
    let app = app.restart_with(|c| c.oauth.signup = false).await;
    for vouched in [true, false] {
        let (taken, free) = (
            answer(&app, &op, &format!("m-3-{vouched}"), "kim@example.com", vouched).await,
            answer(&app, &op, &format!("m-4-{vouched}"), "nobody@example.com", vouched).await,
        );
        assert_eq!(taken, free, "vouched: {vouched}");
        assert_eq!(taken.1["code"], "identity_not_linked", "vouched: {vouched}");
    }
}

/// Item 13: Every unauthenticated start used to write a durable row (~1.7 KB), and one address
/// could write about 12,000 between two prunings. Now a start writes nothing durable (the login
/// rides in its sealed cookie) and counts against the address's login rate limit.
async fn starts_story(mut app: TestApp) {
    let stranger = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let burst = app.cfg.rate_limit.login.per_ip.burst;
    for i in 0..burst {
        let r = stranger.get(start_url(&app, "github", APP)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "start #{i}");
    }
    let r = stranger.get(start_url(&app, "github", APP)).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another address has its own budget.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = elsewhere.get(start_url(&app, "github", APP)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);

    app.shutdown().await;
    let storage = app.cfg.storage.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let store = authd::store::Store::open(&storage).unwrap();
        store.read(|tx| tx.one_time_secrets()).unwrap().len()
    })
    .await
    .unwrap();
    assert_eq!(rows, 0, "starts left durable rows");
}

/// GitHub's authorize URL is made without asking GitHub, so no provider need run.
fn limited(c: &mut authd::config::Config) {
    c.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    c.oauth.allowed_redirects = vec![APP.into()];
    c.oauth.providers = [("github".to_owned(), provider(ProviderKind::Github))].into_iter().collect();
    c.rate_limit.enabled = true;
    // A burst of five, and no more for an hour: what the test counts cannot refill meanwhile.
    c.rate_limit.login.per_ip = Limit::new(1, 3600, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_starts_write_nothing_durable_and_are_limited_per_address() {
    starts_story(TestApp::spawn_with(limited).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_starts_write_nothing_durable_and_are_limited_per_address_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(limited).await else { return };
    starts_story(app).await;
}

/// Item 7, the reset's part: a stolen session was enough to link an attacker's provider, and the
/// link outlived the owner's reset. A reset now unlinks the identities linked since the last
/// proof of a name, and `keep_identities: false` unlinks them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_unlinks_the_identities_linked_since_the_last_proof() {
    reset_unlinks_identities(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_unlinks_the_identities_linked_since_the_last_proof_on_postgres() {
    let Some(url) = crate::support::postgres_db().await else { return };
    reset_unlinks_identities(Some(url)).await;
}

async fn reset_unlinks_identities(postgres: Option<String>) {
    let port = free_port();
    let Some(op) = RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let sink = MailSink::start().await;
    let app = authd_with(port, vec![("op", op_config(&op))], |c| {
        sink.configure(c);
        c.verification.resend_interval = HumanDuration::secs(0);
        c.verification.email = VerifyMode::Optional;
        if let Some(url) = &postgres {
            crate::support::use_postgres(c, url);
        }
    })
    .await;
    register_confirmed(&app, &sink, "uma@example.com").await;

    // Someone holding Uma's fresh session links their own provider account.
    let stolen = Tokens::from(&app.login("uma@example.com", PASSWORD).await);
    op.next(json!({"sub": "mallory-op", "email": "mallory@example.com", "email_verified": true})).await;
    assert!(link_op(&app, &stolen.access).await.is_none());
    sink.nth_to("uma@example.com", 2).await; // the notice of the link
    op.next(json!({"sub": "mallory-op", "email": "mallory@example.com", "email_verified": true})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(
        claims_of(&Tokens::from(&r.json::<Value>().await.unwrap()).access)["sub"],
        claims_of(&stolen.access)["sub"]
    );

    // Uma resets her password, as the notice of the link advises.
    let r = app.post("/v1/auth/password/forgot", &json!({"login": "uma@example.com"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let token = sink.nth_to("uma@example.com", 3).await.token("http://");
    let r =
        app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": "a brand new passphrase"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let uma = Tokens::from(&app.login("uma@example.com", "a brand new passphrase").await);
    let ids: Value = app.get_auth("/v1/me/identities", &uma.access).await.json().await.unwrap();
    assert_eq!(ids, json!([]), "the identity linked since the last proof is gone");

    // The provider account no longer opens Uma's account.
    op.next(json!({"sub": "mallory-op", "email": "mallory@example.com", "email_verified": true})).await;
    let r = exchange(&app, &login_at(&app, "op").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(
        claims_of(&Tokens::from(&r.json::<Value>().await.unwrap()).access)["sub"],
        claims_of(&uma.access)["sub"]
    );

    // Uma links her own provider account, and later proves a new address: the link is older
    // than that proof, so a reset keeps it, unless she asks for `keep_identities: false`.
    op.next(json!({"sub": "uma-op", "email": "uma@example.com", "email_verified": true})).await;
    assert!(link_op(&app, &uma.access).await.is_none());
    tokio::time::sleep(Duration::from_millis(1100)).await; // proofs and links are dated by the second
    let r = call(&app, &uma.access, Method::PATCH, "/v1/me", Some(json!({"email": "uma2@example.com"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let code = sink.first_to("uma2@example.com").await.code();
    let r = app.post("/v1/auth/verify", &json!({"email": "uma2@example.com", "code": code})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let reset = |n: usize, password: &'static str, keep: bool| {
        let (app, sink) = (&app, &sink);
        async move {
            let r = app.post("/v1/auth/password/forgot", &json!({"login": "uma2@example.com"})).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            let token = sink.nth_to("uma2@example.com", n).await.token("http://");
            let body = json!({"token": token, "new_password": password, "keep_identities": keep});
            assert_eq!(app.post("/v1/auth/password/reset", &body).await.status(), StatusCode::NO_CONTENT);
            Tokens::from(&app.login("uma2@example.com", password).await)
        }
    };
    let uma = reset(2, "another new passphrase", true).await;
    let ids: Value = app.get_auth("/v1/me/identities", &uma.access).await.json().await.unwrap();
    assert_eq!(ids.as_array().map(Vec::len), Some(1), "linked before the last proof: kept");
    let uma = reset(3, "yet another passphrase", false).await;
    let ids: Value = app.get_auth("/v1/me/identities", &uma.access).await.json().await.unwrap();
    assert_eq!(ids, json!([]));
}
