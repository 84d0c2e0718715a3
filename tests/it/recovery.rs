//! Verified contacts and password recovery, through the real API, with mail read from a real
//! SMTP server and SMS from a real HTTP receiver.

use std::time::Duration;

use authd::config::{Config, HumanDuration, Secret, VerifyMode};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{MailSink, PASSWORD, SinkTls, SmsGateway, TestApp, Tokens, assert_problem, claims_of};

const NEW_PASSWORD: &str = "a brand new passphrase, much longer";

fn with_mail(sink: &MailSink, email: VerifyMode) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        sink.configure(c);
        c.verification.email = email;
        c.verification.resend_interval = HumanDuration::secs(0);
    }
}

async fn register(app: &TestApp, email: &str) -> reqwest::Response {
    app.post("/v1/auth/register", &json!({"email": email, "password": PASSWORD})).await
}

/// register → login refused until confirmed → wrong code → right code → login → claims say so.
async fn confirmation_story(app: &TestApp, sink: &MailSink) {
    assert_eq!(register(app, "alice@example.com").await.status(), StatusCode::CREATED);
    // Before confirmation the right password answers like a wrong one (a taken address must not
    // be told from a new one).
    assert_problem(
        app.post("/v1/auth/login", &json!({"login": "alice@example.com", "password": PASSWORD})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // A wrong password says nothing about verification.
    assert_problem(
        app.post("/v1/auth/login", &json!({"login": "alice@example.com", "password": "wrong password here"})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    let mail = sink.first_to("alice@example.com").await;
    assert!(mail.subject.contains("Confirm your email"), "{}", mail.subject);
    assert!(mail.html.contains("<a href=\""), "{}", mail.html);
    let code = mail.code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_problem(
        app.post("/v1/auth/verify", &json!({"email": "alice@example.com", "code": wrong})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    let r = app.post("/v1/auth/verify", &json!({"email": "ALICE@example.com", "code": code})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Spent: the code and the link of the same mail are one secret.
    assert_problem(
        app.post("/v1/auth/verify", &json!({"email": "alice@example.com", "code": code})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    let token = mail.token("http://");
    assert_problem(
        app.post("/v1/auth/verify", &json!({"token": token})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;

    let t = Tokens::from(&app.login("alice@example.com", PASSWORD).await);
    assert_eq!(claims_of(&t.access)["email_verified"], json!(true));
    assert_eq!(claims_of(&t.access)["amr"], json!(["pwd"]));
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["email_verified"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_email_is_confirmed_by_a_mailed_code_before_login() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Required)).await;
    confirmation_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_story_holds_on_postgres() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(with_mail(&sink, VerifyMode::Required)).await else { return };
    confirmation_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_burn_it_and_a_resend_brings_a_new_one() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink, VerifyMode::Optional)(c);
        c.verification.resend_interval = HumanDuration::secs(60);
    })
    .await;
    assert_eq!(register(&app, "bea@example.com").await.status(), StatusCode::CREATED);
    // Optional: login works before confirming, and the claims tell.
    let t = Tokens::from(&app.login("bea@example.com", PASSWORD).await);
    assert_eq!(claims_of(&t.access)["email_verified"], json!(false));
    let code = sink.first_to("bea@example.com").await.code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_problem(
            app.post("/v1/auth/verify", &json!({"email": "bea@example.com", "code": wrong})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
        )
        .await;
    }
    assert_problem(
        app.post("/v1/auth/verify", &json!({"email": "bea@example.com", "code": code})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;

    // Resend: the same answer for an account and for nobody; a repeat is refused for both.
    let known = app.post("/v1/auth/verify/resend", &json!({"email": "bea@example.com"})).await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    let known: Value = known.json().await.unwrap();
    let unknown = app.post("/v1/auth/verify/resend", &json!({"email": "nobody@example.com"})).await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(unknown.json::<Value>().await.unwrap(), known);
    for who in ["bea@example.com", "nobody@example.com"] {
        assert_problem(
            app.post("/v1/auth/verify/resend", &json!({"email": who})).await,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        )
        .await;
    }
    let second = sink.nth_to("bea@example.com", 2).await;
    assert_eq!(
        app.post("/v1/auth/verify", &json!({"token": second.token("http://")})).await.status(),
        StatusCode::NO_CONTENT
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.count_to("nobody@example.com"), 0);
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["email_verified"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_says_so_and_is_gone() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink, VerifyMode::Optional)(c);
        c.verification.email_ttl = HumanDuration::secs(1);
    })
    .await;
    assert_eq!(register(&app, "cleo@example.com").await.status(), StatusCode::CREATED);
    let mail = sink.first_to("cleo@example.com").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_problem(
        app.post("/v1/auth/verify", &json!({"token": mail.token("http://")})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "code_expired",
    )
    .await;
    assert_problem(
        app.post("/v1/auth/verify", &json!({"email": "cleo@example.com", "code": mail.code()})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_taken_email_answers_like_a_new_account_and_tells_the_owner() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Optional)).await;
    let first = register(&app, "dora@example.com").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = app
        .post("/v1/auth/register", &json!({"email": "Dora@example.com", "password": "another fine passphrase"}))
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&again), keys(&first));
    assert_ne!(again["id"], first["id"]);
    assert_eq!((&again["email"], &again["email_verified"]), (&first["email"], &first["email_verified"]));

    let notice = sink.nth_to("dora@example.com", 2).await;
    assert!(notice.subject.contains("tried to register"), "{}", notice.subject);
    assert!(notice.link("http://").ends_with("/ui/forgot"), "{}", notice.text);
    // Nothing changed: the first password still signs in, the second does not.
    app.login("dora@example.com", PASSWORD).await;
    assert_problem(
        app.post("/v1/auth/login", &json!({"login": "dora@example.com", "password": "another fine passphrase"})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // A username stays first come, first served.
    let r = app
        .post("/v1/auth/register", &json!({"email": "eve@example.com", "username": "dora", "password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_problem(
        app.post("/v1/auth/register", &json!({"email": "eva@example.com", "username": "dora", "password": PASSWORD}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_email_takes_effect_once_confirmed_and_the_old_one_is_told() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Optional)).await;
    assert_eq!(register(&app, "finn@example.com").await.status(), StatusCode::CREATED);
    let t = Tokens::from(&app.login("finn@example.com", PASSWORD).await);
    let r = crate::support::call(
        &app,
        &t.access,
        reqwest::Method::PATCH,
        "/v1/me",
        Some(json!({"email": "finn@new.example.com", "locale": "ru"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!((me["email"].as_str(), me["locale"].as_str()), (Some("finn@example.com"), Some("ru")));

    let notice = sink.nth_to("finn@example.com", 2).await;
    assert!(notice.subject.contains("меняется"), "{}", notice.subject);
    assert!(notice.text.contains("finn@new.example.com"));
    let confirm = sink.first_to("finn@new.example.com").await;
    assert!(confirm.subject.starts_with("Подтвердите"), "{}", confirm.subject);
    // The old address still signs in until the new one is confirmed.
    app.login("finn@example.com", PASSWORD).await;
    assert_eq!(
        app.post("/v1/auth/verify", &json!({"token": confirm.token("http://")})).await.status(),
        StatusCode::NO_CONTENT
    );
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!((me["email"].as_str(), &me["email_verified"]), (Some("finn@new.example.com"), &json!(true)));
    app.login("finn@new.example.com", PASSWORD).await;
    assert_problem(
        app.post("/v1/auth/login", &json!({"login": "finn@example.com", "password": PASSWORD})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // A bad locale is refused by the schema.
    let r =
        crate::support::call(&app, &t.access, reqwest::Method::PATCH, "/v1/me", Some(json!({"locale": "xx"}))).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_email_needs_a_recent_sign_in() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink, VerifyMode::Optional)(c);
        c.security.step_up_window = HumanDuration::secs(5);
    })
    .await;
    assert_eq!(register(&app, "gus@example.com").await.status(), StatusCode::CREATED);
    let t = Tokens::from(&app.login("gus@example.com", PASSWORD).await);
    tokio::time::sleep(Duration::from_millis(6100)).await;
    // A refresh keeps the original sign-in time.
    let refreshed: Value = app.refresh(&t.refresh).await.json().await.unwrap();
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["auth_time"], claims_of(&t.access)["auth_time"]);
    let r = crate::support::call(
        &app,
        access,
        reqwest::Method::PATCH,
        "/v1/me",
        Some(json!({"email": "gus@new.example.com"})),
    )
    .await;
    let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    assert_problem(r, StatusCode::UNAUTHORIZED, "step_up_required").await;
    assert!(www.unwrap().contains("insufficient_user_authentication"));
    // Preferences need no fresh sign-in.
    let r = crate::support::call(
        &app,
        access,
        reqwest::Method::PATCH,
        "/v1/me",
        Some(json!({"new_device_notices": false})),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["new_device_notices"], json!(false));
}

fn code_in(text: &str) -> String {
    regex::Regex::new(r"\b[0-9]{6}\b").unwrap().find(text).unwrap().as_str().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_are_confirmed_and_reset_by_signed_sms() {
    let gw = SmsGateway::start().await;
    let app = TestApp::spawn_with(|c| {
        gw.configure(c);
        c.verification.phone = VerifyMode::Required;
        c.verification.resend_interval = HumanDuration::secs(0);
    })
    .await;
    let r = app.post("/v1/auth/register", &json!({"phone": "+14155550123", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_problem(
        app.post("/v1/auth/login", &json!({"login": "+14155550123", "password": PASSWORD})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let text = gw.nth_to("+14155550123", 1).await;
    assert_eq!(text["kind"], "verify_phone");
    let code = code_in(text["text"].as_str().unwrap());
    assert_eq!(
        app.post("/v1/auth/verify", &json!({"phone": "+1 415 555 0123", "code": code})).await.status(),
        StatusCode::NO_CONTENT
    );
    app.login("+14155550123", PASSWORD).await;

    // A confirmation code does not reset a password, nor the reverse.
    assert_problem(
        app.post(
            "/v1/auth/password/reset",
            &json!({"login": "+14155550123", "code": code, "new_password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    assert_eq!(
        app.post("/v1/auth/password/forgot", &json!({"login": "+14155550123"})).await.status(),
        StatusCode::ACCEPTED
    );
    let text = gw.nth_to("+14155550123", 2).await;
    assert_eq!(text["kind"], "password_reset_sms");
    let reset_code = code_in(text["text"].as_str().unwrap());
    assert_problem(
        app.post("/v1/auth/verify", &json!({"phone": "+14155550123", "code": reset_code})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    let r = app
        .post(
            "/v1/auth/password/reset",
            &json!({"login": "+14155550123", "code": reset_code, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.login("+14155550123", NEW_PASSWORD).await;
}

/// forgot → mail → bad proofs change nothing → reset → every old token refused → new password.
async fn reset_story(app: &TestApp, sink: &MailSink) {
    assert_eq!(register(app, "hugo@example.com").await.status(), StatusCode::CREATED);
    let old = Tokens::from(&app.login("hugo@example.com", PASSWORD).await);
    let known = app.post("/v1/auth/password/forgot", &json!({"login": "hugo@example.com"})).await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    let unknown = app.post("/v1/auth/password/forgot", &json!({"login": "nobody@example.com"})).await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(known.json::<Value>().await.unwrap(), unknown.json::<Value>().await.unwrap());

    let mail = sink.first_to("hugo@example.com").await;
    assert!(mail.subject.contains("Reset your"), "{}", mail.subject);
    let link = mail.link("http://");
    assert!(link.starts_with(&format!("{}/ui/reset?token=", app.url(""))), "{link}");
    let token = mail.token("http://");
    let code = mail.code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_problem(
        app.post(
            "/v1/auth/password/reset",
            &json!({"login": "hugo@example.com", "code": wrong, "new_password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    assert_problem(
        app.post("/v1/auth/password/reset", &json!({"token": "x".repeat(43), "new_password": NEW_PASSWORD})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    // A weak password is refused and the link still works.
    assert_problem(
        app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": "password"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(app.status_of_me(&old.access).await, StatusCode::OK, "nothing changed yet");
    // The reset page says it in words, never by a field's name.
    let jar = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let form = jar.get(app.url(&format!("/ui/reset?token={token}"))).send().await.unwrap().text().await.unwrap();
    let csrf = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap().captures(&form).unwrap()[1].to_owned();
    let r = jar
        .post(app.url("/ui/reset"))
        .form(&[
            ("token", token.as_str()),
            ("csrf", csrf.as_str()),
            ("password", "password"),
            ("password_again", "password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.unwrap();
    assert!(page.contains("This password is one of the most commonly used."), "{page}");
    assert!(!page.contains("new_password is"), "{page}");

    let r = app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": NEW_PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.status_of_me(&old.access).await, StatusCode::UNAUTHORIZED);
    assert_problem(app.refresh(&old.refresh).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_problem(
        app.post("/v1/auth/login", &json!({"login": "hugo@example.com", "password": PASSWORD})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let t = Tokens::from(&app.login("hugo@example.com", NEW_PASSWORD).await);
    // The mail reached the address: it counts as confirmed.
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["email_verified"], json!(true));
    assert_problem(
        app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": "yet another passphrase"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    assert_problem(
        app.post(
            "/v1/auth/password/reset",
            &json!({"login": "hugo@example.com", "code": code, "new_password": "yet another passphrase"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    let events = app.svc().audit.mine(me["id"].as_str().unwrap().parse().unwrap(), 50).await.unwrap();
    assert!(events.iter().any(|e| e.event == "user.password_reset"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_by_a_mailed_link_and_every_old_token_dies() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Off)).await;
    reset_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_story_holds_on_postgres() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(with_mail(&sink, VerifyMode::Off)).await else { return };
    reset_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_answers_alike_for_accounts_and_strangers() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Off)).await;
    assert_eq!(register(&app, "ines@example.com").await.status(), StatusCode::CREATED);
    let mut bodies = Vec::new();
    for login in ["ines@example.com", "stranger@example.com"] {
        let r = app.post("/v1/auth/password/forgot", &json!({"login": login})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        bodies.push(r.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    assert!(sink.first_to("ines@example.com").await.subject.contains("Reset your"));
    assert_eq!(sink.count_to("stranger@example.com"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_answers_alike_for_accounts_and_strangers() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Optional)).await;
    assert_eq!(register(&app, "ivo@example.com").await.status(), StatusCode::CREATED);
    let mut bodies = Vec::new();
    for email in ["ivo@example.com", "stranger@example.com"] {
        let r = app.post("/v1/auth/verify/resend", &json!({"email": email})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        bodies.push(r.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    sink.nth_to("ivo@example.com", 2).await;
    assert_eq!(sink.count_to("stranger@example.com"), 0);
}

/// What keeps those answers alike in time as well: they are given before anything about the
/// account is read, and the lookup and the mail come after. So with the account tables locked,
/// where any read of them must wait, both answers still come, and the mail once they are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_and_resend_answer_before_any_account_is_read() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(|c| {
        with_mail(&sink, VerifyMode::Optional)(c);
        // The lookups wait for the lock below rather than give up.
        c.storage.statement_timeout = HumanDuration::secs(60);
    })
    .await
    else {
        return;
    };
    assert_eq!(register(&app, "ines@example.com").await.status(), StatusCode::CREATED);
    sink.first_to("ines@example.com").await;

    let url = &app.cfg.storage.url.as_ref().unwrap().0;
    let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    db.batch_execute("BEGIN; LOCK TABLE users, user_logins, one_time_secrets IN ACCESS EXCLUSIVE MODE").await.unwrap();
    // A request that read the account would wait for the lock: this client would give up first.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    for (path, field) in [("/v1/auth/password/forgot", "login"), ("/v1/auth/verify/resend", "email")] {
        let mut bodies = Vec::new();
        for who in ["ines@example.com", "stranger@example.com"] {
            let r = http.post(app.url(path)).json(&json!({ field: who })).send().await;
            let r = r.unwrap_or_else(|e| panic!("{path} for {who} waited for the account: {e}"));
            assert_eq!(r.status(), StatusCode::ACCEPTED, "{path} for {who}");
            bodies.push(r.text().await.unwrap());
        }
        assert_eq!(bodies[0], bodies[1], "{path}");
    }
    assert_eq!(sink.count_to("ines@example.com"), 1, "nothing is sent while the account cannot be read");
    db.batch_execute("COMMIT").await.unwrap();

    let mut subjects =
        vec![sink.nth_to("ines@example.com", 2).await.subject, sink.nth_to("ines@example.com", 3).await.subject];
    subjects.sort();
    assert!(subjects[0].contains("Confirm your email") && subjects[1].contains("Reset your"), "{subjects:?}");
    assert_eq!(sink.count_to("stranger@example.com"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_starttls_or_implicit_tls_with_authentication() {
    for mode in [SinkTls::Starttls, SinkTls::Implicit] {
        let sink = MailSink::start_with(mode, Some(("mailer", "s3cret-pass"))).await;
        let dir = crate::support::private_dir();
        let ca = dir.path().join("smtp-ca.pem");
        std::fs::write(&ca, &sink.cert_pem).unwrap();
        let app = TestApp::spawn_with(|c| {
            with_mail(&sink, VerifyMode::Optional)(c);
            c.email.smtp.tls = if mode == SinkTls::Starttls {
                authd::config::SmtpTls::Starttls
            } else {
                authd::config::SmtpTls::Implicit
            };
            c.email.smtp.tls_ca = Some(ca.clone());
            c.email.smtp.username = Some("mailer".into());
            c.email.smtp.password = Some(Secret("s3cret-pass".into()));
        })
        .await;
        let r = app
            .post("/v1/auth/register", &json!({"email": "jo@example.com", "password": PASSWORD, "locale": "ru"}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let mail = sink.first_to("jo@example.com").await;
        assert!(mail.tls, "{mode:?}");
        assert_eq!(mail.auth.as_deref(), Some("mailer"));
        assert!(mail.subject.starts_with("Подтвердите"), "{}", mail.subject);
        assert!(mail.text.contains("24 часа"), "{}", mail.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_language_picks_the_language_of_the_mail() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(with_mail(&sink, VerifyMode::Optional)).await;
    let r = app
        .http
        .post(app.url("/v1/auth/register"))
        .header("accept-language", "de-DE, ru;q=0.9, en;q=0.5")
        .json(&json!({"email": "kai@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(sink.first_to("kai@example.com").await.subject.starts_with("Подтвердите"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_mail_waits_in_the_outbox_and_requests_do_not() {
    // Nothing listens on this port: registration answers at once, the message stays queued.
    let port = crate::support::free_port();
    let app = TestApp::spawn_with(|c| {
        c.email.transport = authd::config::EmailTransport::Smtp;
        c.email.smtp.host = "127.0.0.1".into();
        c.email.smtp.port = port;
        c.email.smtp.tls = authd::config::SmtpTls::None;
        c.verification.email = VerifyMode::Optional;
        c.messages.retry_for = HumanDuration::secs(2);
    })
    .await;
    let user: Value = register(&app, "lena@example.com").await.json().await.unwrap();
    // Answered while the message is still queued: the request did not wait for the delivery.
    let queued = app.svc().outbox.pending_messages().await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let mut tried = queued;
    for _ in 0..100 {
        if tried.first().is_some_and(|m| m.0 >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        tried = app.svc().outbox.pending_messages().await.unwrap();
    }
    assert!(tried.len() == 1 && tried[0].0 >= 1 && tried[0].1.is_some(), "tried, with an error kept: {tried:?}");
    // Past messages.retry_for it is given up, and the audit log says so.
    let mut failed = Vec::new();
    for _ in 0..100 {
        let filter = authd::service::audit::AuditFilter { event: Some("message.failed".into()), ..Default::default() };
        failed = app.svc().audit.events(&authd::service::Principal::Operator, filter, None, 10).await.unwrap();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].details["kind"].as_str(), failed[0].details["channel"].as_str()),
        (Some("verify_email"), Some("email"))
    );
    assert!(app.svc().outbox.pending_messages().await.unwrap().is_empty());
    assert!(user["id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_come_from_the_configured_public_url_never_the_host_header() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink, VerifyMode::Off)(c);
        c.server.public_url = Some("https://auth.example.com".into());
    })
    .await;
    assert_eq!(register(&app, "max@example.com").await.status(), StatusCode::CREATED);
    let r = app
        .http
        .post(app.url("/v1/auth/password/forgot"))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .json(&json!({"login": "max@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let link = sink.first_to("max@example.com").await.link("https://");
    assert!(link.starts_with("https://auth.example.com/ui/reset?token="), "{link}");
}

#[tokio::test]
async fn a_broken_template_stops_the_server_at_start() {
    let dir = crate::support::private_dir();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(templates.join("en")).unwrap();
    std::fs::write(templates.join("en/password_reset.jinja"), "{% block subject %}Hi {{ nme }}{% endblock %}").unwrap();
    let mut cfg = crate::support::test_config(dir.path());
    cfg.messages.templates_dir = Some(templates);
    let err = authd::server::Application::build(cfg).await.err().expect("refused").to_string();
    assert!(err.contains("en/password_reset"), "{err}");
}
