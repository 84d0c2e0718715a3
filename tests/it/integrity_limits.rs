//! Abuse budgets that must hold whatever else happens: the second factor's guessing budget, the
//! size of `/metrics`, correct logins in parallel, and a role that comes to require a second
//! factor.

use std::{process::Command, sync::Arc};

use authd::config::{Argon2Config, Config, HumanDuration, Secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, Tokens, assert_problem, call, client_from};

/// The TOTP code for `time` (seconds since the epoch), from oathtool.
fn code_at(secret_b32: &str, time: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "--now", &format!("@{time}"), secret_b32])
        .output()
        .expect("oathtool is installed");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn now() -> u64 {
    authd::model::now()
}

/// A code that is not the one for the next step.
fn wrong_code(secret: &str) -> &'static str {
    if code_at(secret, now() + 30) == "000000" { "111111" } else { "000000" }
}

/// Registers `email`, turns TOTP on, and returns the base32 secret.
async fn with_totp(app: &TestApp, email: &str) -> String {
    let t = app.signed_in(email).await;
    let r = call(app, &t.access, Method::POST, "/v1/me/mfa/totp", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let secret = r.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
    let r =
        call(app, &t.access, Method::POST, "/v1/me/mfa/totp/confirm", Some(json!({"code": code_at(&secret, now())})))
            .await;
    assert_eq!(r.status(), StatusCode::OK);
    secret
}

/// A correct password: the second step's token.
async fn mfa_token(client: &reqwest::Client, app: &TestApp, email: &str) -> String {
    let r = client.post(app.url("/v1/auth/login")).json(&json!({"login": email, "password": PASSWORD})).send().await;
    let p = assert_problem(r.unwrap(), StatusCode::UNAUTHORIZED, "mfa_required").await;
    p["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(client: &reqwest::Client, app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    client.post(app.url("/v1/auth/login/mfa")).json(&json!({"mfa_token": token, "code": code})).send().await.unwrap()
}

fn small_mfa_budget(c: &mut Config) {
    c.brute_force.free_failures = 3;
    c.brute_force.base_delay = HumanDuration::secs(3);
    c.brute_force.challenge_after = 100;
}

/// Wrong codes use up a budget of their own that a correct password does not wash: past it, even
/// the right code waits (429 with Retry-After), and after the wait it signs in.
async fn totp_budget_story(app: &TestApp) {
    let email = "totp-target@example.com";
    let secret = with_totp(app, email).await;
    let http = &app.http;
    for _ in 0..3 {
        // Each guess behind a fresh correct password, as the attacker who holds it would.
        let token = mfa_token(http, app, email).await;
        let r = second_step(http, app, &token, wrong_code(&secret)).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    let token = mfa_token(http, app, email).await;
    let r = second_step(http, app, &token, &code_at(&secret, now() + 30)).await;
    let wait: u64 = r.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert!((1..=4).contains(&wait), "{wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let r = second_step(http, app, &token, &code_at(&secret, now() + 30)).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_password_does_not_wash_the_totp_budget() {
    let app = TestApp::spawn_with(small_mfa_budget).await;
    totp_budget_story(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_password_does_not_wash_the_totp_budget_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(small_mfa_budget).await else { return };
    totp_budget_story(&app).await;
}

/// The second step has a per-account rate limit of its own (defaults), whatever the addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_step_is_rate_limited_per_account() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.brute_force.free_failures = 100;
        c.brute_force.challenge_after = 100;
    })
    .await;
    let email = "totp-limited@example.com";
    let secret = with_totp(&app, email).await;
    let mut refused = None;
    for i in 0..8 {
        let client = client_from(&format!("127.0.0.{}", 10 + i));
        let token = mfa_token(&client, &app, email).await;
        let r = second_step(&client, &app, &token, wrong_code(&secret)).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
            assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
            refused = Some(i);
            break;
        }
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    assert!(refused.is_some_and(|i| i >= 3), "refused after {refused:?} codes");
}

/// However many distinct unknown paths and made-up methods come, `/metrics` keeps a bounded
/// number of series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_do_not_grow_metrics() {
    let app = TestApp::spawn_with(|c| c.metrics.token = Some(Secret("scrape-token-0123456789".into()))).await;
    let scrape = async || {
        let r = app.http.get(app.url("/metrics")).bearer_auth("scrape-token-0123456789").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    };
    // Every kind of answer once, so that only new labels could add lines.
    app.http.get(app.url("/ui/forgot")).send().await.unwrap();
    app.http.get(app.url("/ui/nothing-here")).send().await.unwrap();
    app.http.get(app.url("/no/such/route")).send().await.unwrap();
    let before = scrape().await.lines().count();
    for i in 0..60 {
        let path = format!("/ui/{}{i}", "x".repeat(200));
        app.http.get(app.url(&path)).send().await.unwrap();
        app.http.post(app.url(&format!("/ui/forgot/{i}"))).send().await.unwrap();
        let method = Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        app.http.request(method, app.url("/v1/me")).send().await.unwrap();
    }
    let text = scrape().await;
    let after = text.lines().count();
    assert!(!text.contains("xxxxx") && !text.contains("BREW"), "{text}");
    assert!(after <= before + 60, "{before} lines, then {after} after 180 odd requests:\n{text}");
}

/// Correct passwords in parallel wait for a slot rather than being refused; wrong ones in
/// parallel still get no more hashing than the free failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_correct_logins_all_get_in() {
    let app = Arc::new(
        TestApp::spawn_with(|c| {
            // Slow enough hashing that the logins are in flight together.
            c.passwords.argon2 = Argon2Config { memory_kib: 8 * 1024, iterations: 4, parallelism: 1 };
            c.brute_force.free_failures = 5;
            c.brute_force.challenge_after = 100;
        })
        .await,
    );
    app.register("busy@example.com").await;
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let body = json!({"login": "busy@example.com", "password": PASSWORD});
                app.post("/v1/auth/login", &body).await.status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for l in logins {
        statuses.push(l.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
}

async fn require_mfa_story(app: &TestApp) {
    let admin = app.admin("boss@example.com").await;
    let r = call(
        app,
        &admin.access,
        Method::POST,
        "/v1/admin/roles",
        Some(json!({"name": "treasury", "permissions": ["ledger:read"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let (_, user) = app.user_with_roles("cashier@example.com", &["user", "treasury"]).await;
    // Refresh works while the role asks for nothing more.
    let user = Tokens::from(&app.refresh(&user.refresh).await.json::<Value>().await.unwrap());
    let r =
        call(app, &admin.access, Method::PATCH, "/v1/admin/roles/treasury", Some(json!({"require_mfa": true}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The password-only session ends; the admin's own session (no such role) goes on.
    let r = app.refresh(&user.refresh).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "second_factor_required").await;
    assert_eq!(app.refresh(&admin.refresh).await.status(), StatusCode::OK);
    let r = app.post("/v1/auth/login", &json!({"login": "cashier@example.com", "password": PASSWORD})).await;
    assert_problem(r, StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiring_a_second_factor_ends_refresh_of_password_only_sessions() {
    let app = TestApp::spawn().await;
    require_mfa_story(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiring_a_second_factor_ends_refresh_of_password_only_sessions_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    require_mfa_story(&app).await;
}
