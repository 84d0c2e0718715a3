//! The user's story, end to end over HTTP.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, TestApp, Tokens, assert_problem};

#[tokio::test]
async fn register_login_me_refresh_logout_then_old_tokens_refused() {
    the_story(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn the_same_story_on_postgres_survives_a_restart() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    let (first, second) = the_story(&app).await;
    // Revocations are durable there too: a restarted node loads them back.
    let app = app.restart().await;
    assert_problem(app.get_auth("/v1/me", &second.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    assert_problem(app.get_auth("/v1/me", &first.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    let fresh = Tokens::from(&app.login("alice@example.com", PASSWORD).await);
    assert_eq!(app.status_of_me(&fresh.access).await, StatusCode::OK);
}

#[tokio::test]
async fn the_same_story_on_postgres_and_redis() {
    let Some(redis) = crate::support::Redis::start().await else { return };
    let Some(app) = TestApp::spawn_on_postgres(|cfg| {
        redis.configure(cfg);
        cfg.rate_limit.enabled = true;
    })
    .await
    else {
        return;
    };
    the_story(&app).await;
    assert_eq!(app.svc().rate_limit_fallbacks(), 0, "every limit was counted in Redis");
}

/// register → login → me → refresh → logout → old tokens refused. Returns both token pairs.
async fn the_story(app: &TestApp) -> (Tokens, Tokens) {
    let user = app.register("Alice@Example.com").await;
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["roles"], json!(["user"]));
    assert_eq!(user["status"], "active");
    assert!(user.get("password_hash").is_none());

    let first = Tokens::from(&app.login("ALICE@example.com", PASSWORD).await);
    let me: serde_json::Value = app.get_auth("/v1/me", &first.access).await.json().await.unwrap();
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["email"], "alice@example.com");

    let r = app.refresh(&first.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["session_id"], first.session.as_str());
    let second = Tokens::from(&body);
    assert_ne!(second.refresh, first.refresh, "refresh token rotates");
    assert_eq!(app.status_of_me(&second.access).await, StatusCode::OK);

    let r = app.post_auth("/v1/auth/logout", &second.access, &json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    assert_problem(app.get_auth("/v1/me", &second.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    assert_problem(app.get_auth("/v1/me", &first.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    assert_problem(app.refresh(&second.refresh).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    (first, second)
}

#[tokio::test]
async fn logout_needs_no_body() {
    let app = TestApp::spawn().await;
    let t = app.signed_in("nobody@example.com").await;
    let r = app.http.post(app.url("/v1/auth/logout")).bearer_auth(&t.access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_refuses_unknown_user_like_wrong_password() {
    let app = TestApp::spawn().await;
    app.register("bob@example.com").await;
    let wrong = app.post("/v1/auth/login", &json!({"login": "bob@example.com", "password": "not the password"})).await;
    let unknown =
        app.post("/v1/auth/login", &json!({"login": "nobody@example.com", "password": "not the password"})).await;
    let garbage = app.post("/v1/auth/login", &json!({"login": "???", "password": "not the password"})).await;
    let a = assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let b = assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let c = assert_problem(garbage, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(a, b, "same body for unknown account and wrong password");
    assert_eq!(a, c);
}

#[tokio::test]
async fn login_works_with_phone_and_username() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/v1/auth/register", &json!({"phone": "+1 415-555-2671", "username": "Carol_9", "password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let u: serde_json::Value = r.json().await.unwrap();
    assert_eq!(u["phone"], "+14155552671");
    assert_eq!(u["username"], "carol_9");
    app.login("+14155552671", PASSWORD).await;
    app.login("carol_9", PASSWORD).await;
    app.login("CAROL_9", PASSWORD).await;
}

#[tokio::test]
async fn disabled_account_is_refused_only_after_a_correct_password() {
    let app = TestApp::spawn().await;
    let t = app.signed_in("dave@example.com").await;
    app.svc()
        .accounts
        .set_status(&authd::service::Principal::Operator, "dave@example.com", authd::model::UserStatus::Disabled)
        .await
        .unwrap();
    assert_problem(app.get_auth("/v1/me", &t.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    assert_problem(app.refresh(&t.refresh).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let wrong = app.post("/v1/auth/login", &json!({"login": "dave@example.com", "password": "wrong password!"})).await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let right = app.post("/v1/auth/login", &json!({"login": "dave@example.com", "password": PASSWORD})).await;
    assert_problem(right, StatusCode::FORBIDDEN, "account_disabled").await;
}

#[tokio::test]
async fn default_argon2_parameters_end_to_end() {
    let app = TestApp::spawn_with(|c| c.passwords.argon2 = authd::config::Argon2Config::default()).await;
    let t = app.signed_in("erin@example.com").await;
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    let phc = app.svc().accounts.find_user("erin@example.com").await.unwrap().password_hash.unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
}

#[tokio::test]
async fn outdated_hashes_are_upgraded_on_login() {
    let app = TestApp::spawn().await;
    app.register("frank@example.com").await;
    let app = app.restart_with(|c| c.passwords.argon2.memory_kib = 128).await;
    let hash = || async { app.svc().accounts.find_user("frank@example.com").await.unwrap().password_hash.unwrap() };
    assert!(hash().await.contains("m=64,"));
    app.login("frank@example.com", PASSWORD).await;
    assert!(hash().await.contains("m=128,"), "rehashed with the configured parameters");
    app.login("frank@example.com", PASSWORD).await;
}
