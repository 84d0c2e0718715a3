//! Account takeover through the account model: names proven or pending, resets, pending
//! changes, guess budgets and sending limits, through the real API with real mail and SMS.

use std::time::Instant;

use authd::config::{Argon2Config, Config, HumanDuration, VerifyMode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{MailSink, PASSWORD, SmsGateway, TestApp, Tokens, assert_problem, call};

const NEW_PASSWORD: &str = "a brand new passphrase, much longer";

fn mail_and_sms<'a>(sink: &'a MailSink, gw: &'a SmsGateway) -> impl FnOnce(&mut Config) + 'a {
    move |c: &mut Config| {
        sink.configure(c);
        gw.configure(c);
        c.verification.resend_interval = HumanDuration::secs(0);
    }
}

fn with_mail(sink: &MailSink, email: VerifyMode) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        sink.configure(c);
        c.verification.email = email;
        c.verification.resend_interval = HumanDuration::secs(0);
    }
}

/// A six-digit code other than every one of `codes`.
fn wrong_code(codes: &[&str]) -> String {
    (0..10).map(|d| d.to_string().repeat(6)).find(|c| !codes.contains(&c.as_str())).unwrap()
}

/// The link token and code of the `k`th password-reset mail to `to` (other mails are skipped).
async fn nth_reset(sink: &MailSink, to: &str, k: usize) -> (String, String) {
    let mut seen = 0;
    for n in 1.. {
        let m = sink.nth_to(to, n).await;
        if m.text.contains("/ui/reset?token=") {
            seen += 1;
            if seen == k {
                return (m.token("http://"), m.code());
            }
        }
    }
    unreachable!()
}

async fn patch_me(app: &TestApp, access: &str, body: Value) -> reqwest::Response {
    call(app, access, Method::PATCH, "/v1/me", Some(body)).await
}

async fn me(app: &TestApp, access: &str) -> Value {
    let r = app.get_auth("/v1/me", access).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

// ---- 1: a pending second name never takes the account over ----

/// The attacker registers the victim's email with the attacker's phone; the victim recovers the
/// account by email. That proves the email and drops the phone: the attacker's SMS reset finds
/// nothing.
async fn pre_account_hijack_story(app: &TestApp, sink: &MailSink) {
    let attacker_phone = "+14155550100";
    let r = app
        .post(
            "/v1/auth/register",
            &json!({"email": "victim@example.com", "phone": attacker_phone, "password": "the attacker's own secret"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    assert_eq!(
        app.post("/v1/auth/password/forgot", &json!({"login": "victim@example.com"})).await.status(),
        StatusCode::ACCEPTED
    );
    let token = sink.first_to("victim@example.com").await.token("http://");
    let r = app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": NEW_PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let t = Tokens::from(&app.login("victim@example.com", NEW_PASSWORD).await);
    let profile = me(app, &t.access).await;
    assert_eq!(profile["email_verified"], json!(true), "{profile}");
    assert!(profile["phone"].is_null(), "the attacker's pending phone is gone: {profile}");
    assert_eq!(profile["phone_verified"], json!(false), "{profile}");

    // The phone names no account any more.
    assert_problem(
        app.post("/v1/auth/login", &json!({"login": attacker_phone, "password": NEW_PASSWORD})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.post(
            "/v1/auth/password/reset",
            &json!({"login": attacker_phone, "code": "123456", "new_password": "the attacker tries again now"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    app.login("victim@example.com", NEW_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_by_email_drops_the_phone_an_attacker_left_pending() {
    let (sink, gw) = (MailSink::start().await, SmsGateway::start().await);
    let app = TestApp::spawn_with(mail_and_sms(&sink, &gw)).await;
    pre_account_hijack_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_by_email_drops_the_pending_phone_on_postgres() {
    let (sink, gw) = (MailSink::start().await, SmsGateway::start().await);
    let Some(app) = TestApp::spawn_on_postgres(mail_and_sms(&sink, &gw)).await else { return };
    pre_account_hijack_story(&app, &sink).await;
}

/// Once the email is proven, a reset asked for by a pending phone goes to the email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_name_is_proven_a_pending_name_gets_no_reset() {
    let (sink, gw) = (MailSink::start().await, SmsGateway::start().await);
    let app = TestApp::spawn_with(mail_and_sms(&sink, &gw)).await;
    app.register("owner@example.com").await;
    app.post("/v1/auth/password/forgot", &json!({"login": "owner@example.com"})).await;
    let token = sink.first_to("owner@example.com").await.token("http://");
    let r = app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": NEW_PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let t = Tokens::from(&app.login("owner@example.com", NEW_PASSWORD).await);
    // Phone verification is off: the phone is set at once, and stays pending.
    assert_eq!(patch_me(&app, &t.access, json!({"phone": "+14155550101"})).await.status(), StatusCode::OK);
    assert_eq!(me(&app, &t.access).await["phone_verified"], json!(false));

    assert_eq!(
        app.post("/v1/auth/password/forgot", &json!({"login": "+14155550101"})).await.status(),
        StatusCode::ACCEPTED
    );
    let (token, _) = nth_reset(&sink, "owner@example.com", 2).await;
    let r = app
        .post("/v1/auth/password/reset", &json!({"token": token, "new_password": "yet another long passphrase"}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

// ---- 9: pending changes die with a reset and with logout-all ----

async fn pending_change_story(app: &TestApp, sink: &MailSink) {
    app.register("keeper@example.com").await;
    let code = sink.first_to("keeper@example.com").await.code();
    let r = app.post("/v1/auth/verify", &json!({"email": "keeper@example.com", "code": code})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // A change made by whoever holds a session; the owner then logs out everywhere.
    let t = Tokens::from(&app.login("keeper@example.com", PASSWORD).await);
    assert_eq!(patch_me(app, &t.access, json!({"email": "thief@example.com"})).await.status(), StatusCode::OK);
    let code = sink.first_to("thief@example.com").await.code();
    let r = app.post_auth("/v1/auth/logout-all", &t.access, &json!({})).await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_problem(
        app.post("/v1/auth/verify", &json!({"email": "thief@example.com", "code": code})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;

    // The same after a reset.
    let t = Tokens::from(&app.login("keeper@example.com", PASSWORD).await);
    assert_eq!(patch_me(app, &t.access, json!({"email": "thief2@example.com"})).await.status(), StatusCode::OK);
    let code = sink.first_to("thief2@example.com").await.code();
    app.post("/v1/auth/password/forgot", &json!({"login": "keeper@example.com"})).await;
    let (token, _) = nth_reset(sink, "keeper@example.com", 1).await;
    let r = app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": NEW_PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.post("/v1/auth/verify", &json!({"email": "thief2@example.com", "code": code})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    let t = Tokens::from(&app.login("keeper@example.com", NEW_PASSWORD).await);
    assert_eq!(me(app, &t.access).await["email"], "keeper@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_email_change_dies_with_logout_all_and_with_a_reset() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Optional)).await;
    pending_change_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_email_change_dies_with_logout_all_and_with_a_reset_on_postgres() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(with_mail(&sink, VerifyMode::Optional)).await else { return };
    pending_change_story(&app, &sink).await;
}

// ---- 8: a login checked while a reset commits opens no session ----

/// Slow enough hashing that a reset can commit while a login's password is being checked.
fn slow_hashing(sink: &MailSink) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        with_mail(sink, VerifyMode::Off)(c);
        c.passwords.argon2 = Argon2Config { memory_kib: 32 * 1024, iterations: 3, parallelism: 1 };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_checked_while_a_reset_commits_gets_no_usable_session() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(slow_hashing(&sink)).await;
    login_racing_a_reset(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_checked_while_a_reset_commits_gets_no_usable_session_on_postgres() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(slow_hashing(&sink)).await else { return };
    login_racing_a_reset(&app, &sink).await;
}

async fn login_racing_a_reset(app: &TestApp, sink: &MailSink) {
    app.register("racer@example.com").await;
    let started = Instant::now();
    app.login("racer@example.com", PASSWORD).await;
    let check = started.elapsed();

    let mut current = PASSWORD.to_owned();
    for i in 0..4u32 {
        app.post("/v1/auth/password/forgot", &json!({"login": "racer@example.com"})).await;
        let token = sink.nth_to("racer@example.com", i as usize + 1).await.token("http://");
        let next = format!("a fresh passphrase, round number {i}");
        let reset = {
            let (http, url, next) = (app.http.clone(), app.url("/v1/auth/password/reset"), next.clone());
            tokio::spawn(
                async move { http.post(url).json(&json!({"token": token, "new_password": next})).send().await },
            )
        };
        // The reset hashes first; the login reads the account then checks while it commits.
        tokio::time::sleep(check.mul_f64(0.2 + 0.2 * f64::from(i))).await;
        let login = app.post("/v1/auth/login", &json!({"login": "racer@example.com", "password": current})).await;
        let login_status = login.status();
        let body: Value = login.json().await.unwrap();
        assert_eq!(reset.await.unwrap().unwrap().status(), StatusCode::NO_CONTENT);
        if login_status == StatusCode::OK {
            // It went through before the reset: the reset ended it.
            let t = Tokens::from(&body);
            assert_eq!(app.status_of_me(&t.access).await, StatusCode::UNAUTHORIZED, "round {i}");
            assert!(!app.refresh(&t.refresh).await.status().is_success(), "round {i}");
        } else {
            assert_eq!(body["code"], "invalid_credentials", "round {i}: {body}");
        }
        current = next;
    }
    app.login("racer@example.com", &current).await;
}

// ---- 12: a reset says nothing about an account before its proof holds ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_with_a_wrong_code_answers_alike_for_accounts_and_strangers() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Off)).await;
    app.register("zelda@example.com").await;
    // Anyone may have a reset sent; its code is what the attacker lacks.
    app.post("/v1/auth/password/forgot", &json!({"login": "zelda@example.com"})).await;
    let code = sink.first_to("zelda@example.com").await.code();
    let wrong = wrong_code(&[&code]);
    for who in ["zelda", "nobody"] {
        let r = app
            .post(
                "/v1/auth/password/reset",
                &json!({"login": format!("{who}@example.com"), "code": wrong,
                        "new_password": format!("{who} rides again and again")}),
            )
            .await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
    }
}

/// With the right code, the account's own words are still refused, and the code survives that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_refused_by_the_policy_keeps_its_code() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Off)).await;
    app.register("zelda@example.com").await;
    app.post("/v1/auth/password/forgot", &json!({"login": "zelda@example.com"})).await;
    let code = sink.first_to("zelda@example.com").await.code();
    let body = json!({"login": "zelda@example.com", "code": code, "new_password": "zelda rides again and again"});
    let problem = assert_problem(
        app.post("/v1/auth/password/reset", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "contains_identifier", "{problem}");
    let body = json!({"login": "zelda@example.com", "code": code, "new_password": NEW_PASSWORD});
    assert_eq!(app.post("/v1/auth/password/reset", &body).await.status(), StatusCode::NO_CONTENT);
}

// ---- 4: a code's guess budget survives a re-issue ----

async fn wrong_guesses(app: &TestApp, body: impl Fn(&str) -> Value, path: &str, wrong: &str, n: usize) {
    for _ in 0..n {
        assert_problem(app.post(path, &body(wrong)).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
    }
}

async fn guess_budget_story(app: &TestApp, sink: &MailSink) {
    // Confirmation codes re-issued by PATCH /v1/me: 5 wrong guesses in all burn them.
    let t = Tokens::from(&app.login("boss@example.com", PASSWORD).await);
    let verify = |c: &str| json!({"email": "ceo@corp.example", "code": c});
    assert_eq!(patch_me(app, &t.access, json!({"email": "ceo@corp.example"})).await.status(), StatusCode::OK);
    let first = sink.nth_to("ceo@corp.example", 1).await.code();
    wrong_guesses(app, verify, "/v1/auth/verify", &wrong_code(&[&first]), 3).await;
    assert_eq!(patch_me(app, &t.access, json!({"email": "ceo@corp.example"})).await.status(), StatusCode::OK);
    let second = sink.nth_to("ceo@corp.example", 2).await.code();
    wrong_guesses(app, verify, "/v1/auth/verify", &wrong_code(&[&first, &second]), 2).await;
    assert_eq!(patch_me(app, &t.access, json!({"email": "ceo@corp.example"})).await.status(), StatusCode::OK);
    let third = sink.nth_to("ceo@corp.example", 3).await.code();
    assert_problem(
        app.post("/v1/auth/verify", &verify(&third)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    assert_eq!(me(app, &t.access).await["email"], "boss@example.com");

    // Reset codes: asking by email, then by username, shares one budget.
    let reset = |c: &str| json!({"login": "boss@example.com", "code": c, "new_password": NEW_PASSWORD});
    app.post("/v1/auth/password/forgot", &json!({"login": "boss@example.com"})).await;
    let first = nth_reset(sink, "boss@example.com", 1).await.1;
    wrong_guesses(app, reset, "/v1/auth/password/reset", &wrong_code(&[&first]), 4).await;
    app.post("/v1/auth/password/forgot", &json!({"login": "the_boss"})).await;
    let second = nth_reset(sink, "boss@example.com", 2).await.1;
    wrong_guesses(app, reset, "/v1/auth/password/reset", &wrong_code(&[&first, &second]), 1).await;
    assert_problem(
        app.post("/v1/auth/password/reset", &reset(&second)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    app.login("boss@example.com", PASSWORD).await;
}

async fn register_boss(app: &TestApp) {
    let r = app
        .post("/v1/auth/register", &json!({"email": "boss@example.com", "username": "the_boss", "password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codes_guess_budget_survives_a_reissue() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Optional)).await;
    register_boss(&app).await;
    sink.first_to("boss@example.com").await;
    guess_budget_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codes_guess_budget_survives_a_reissue_on_postgres() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(with_mail(&sink, VerifyMode::Optional)).await else { return };
    register_boss(&app).await;
    sink.first_to("boss@example.com").await;
    guess_budget_story(&app, &sink).await;
}

// ---- 5: sending from PATCH /v1/me is limited, and changes do not clobber each other ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_that_send_are_limited_per_account() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink, VerifyMode::Optional)(c);
        c.verification.resend_interval = HumanDuration::secs(60);
    })
    .await;
    app.register("sender@example.com").await;
    let t = Tokens::from(&app.login("sender@example.com", PASSWORD).await);
    assert_eq!(patch_me(&app, &t.access, json!({"email": "first@example.com"})).await.status(), StatusCode::OK);
    assert_problem(
        patch_me(&app, &t.access, json!({"email": "second@example.com"})).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    // Changes that send nothing still go through.
    assert_eq!(patch_me(&app, &t.access, json!({"locale": "ru"})).await.status(), StatusCode::OK);
}

async fn no_clobber_story(app: &TestApp, sink: &MailSink) {
    app.post("/v1/auth/register", &json!({"email": "owner@example.com", "password": PASSWORD})).await;
    let owner_code = sink.first_to("owner@example.com").await.code();
    app.post("/v1/auth/register", &json!({"email": "mallory@example.com", "password": PASSWORD})).await;
    let code = sink.first_to("mallory@example.com").await.code();
    app.post("/v1/auth/verify", &json!({"email": "mallory@example.com", "code": code})).await;
    let t = Tokens::from(&app.login("mallory@example.com", PASSWORD).await);
    // Mallory asks for the owner's address: the owner gets a second confirmation.
    assert_eq!(patch_me(app, &t.access, json!({"email": "owner@example.com"})).await.status(), StatusCode::OK);
    sink.nth_to("owner@example.com", 2).await;
    // The owner's own confirmation still works.
    let r = app.post("/v1/auth/verify", &json!({"email": "owner@example.com", "code": owner_code})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.login("owner@example.com", PASSWORD).await;
    assert_eq!(me(app, &t.access).await["email"], "mallory@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_change_does_not_overwrite_another_accounts_confirmation() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Required)).await;
    no_clobber_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_change_does_not_overwrite_another_accounts_confirmation_on_postgres() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(with_mail(&sink, VerifyMode::Required)).await else { return };
    no_clobber_story(&app, &sink).await;
}

/// Item 12, registration: with confirmation required, registering a taken address used to be
/// told from a new one by signing in with the password just chosen (`invalid_credentials` on
/// the taken one, `email_unverified` on the new one). Now both answer, and count, as a wrong
/// password, however often they are tried; only the owner's mailbox tells them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_then_signing_in_tells_a_taken_address_from_a_new_one_in_nothing() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Required)).await;
    register_then_sign_in(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_then_signing_in_tells_nothing_on_postgres() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(with_mail(&sink, VerifyMode::Required)).await else { return };
    register_then_sign_in(&app, &sink).await;
}

async fn register_then_sign_in(app: &TestApp, sink: &MailSink) {
    // The owner's account, confirmed.
    crate::support::oidc::register_confirmed(app, sink, "owner@example.com").await;

    let mut answers = Vec::new();
    for address in ["owner@example.com", "fresh@example.com"] {
        let body = json!({"email": address, "password": "the newcomer's own passphrase"});
        let r = app.post("/v1/auth/register", &body).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{address}");
        let mut seen = Vec::new();
        // Past the free failures (5), both are slowed down alike.
        for _ in 0..7 {
            let r = app
                .post("/v1/auth/login", &json!({"login": address, "password": "the newcomer's own passphrase"}))
                .await;
            let status = r.status();
            let problem: Value = r.json().await.unwrap();
            seen.push((status, problem["code"].clone(), problem["detail"].clone()));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "the same answers, attempt by attempt");
    assert_eq!(answers[0][0].1, json!("invalid_credentials"));

    // The newcomer's address, once confirmed, is an account like any other.
    let code = sink.first_to("fresh@example.com").await.code();
    let r = app.post("/v1/auth/verify", &json!({"email": "fresh@example.com", "code": code})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}
