//! Refresh rotation, reuse detection, devices, logout everywhere, password change, restarts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, Tokens, assert_problem};

#[tokio::test]
async fn reused_refresh_token_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let t1 = app.signed_in("grace@example.com").await;
    let t2 = Tokens::from(&app.refresh(&t1.refresh).await.json::<Value>().await.unwrap());

    // The thief replays the first refresh token.
    assert_problem(app.refresh(&t1.refresh).await, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    // The whole family is dead: the current refresh token and its access token too.
    assert_problem(app.refresh(&t2.refresh).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_problem(app.get_auth("/v1/me", &t2.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_yield_one_success() {
    let app = TestApp::spawn().await;
    let t = app.signed_in("heidi@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (http, url, rt) = (app.http.clone(), app.url("/v1/auth/refresh"), t.refresh.clone());
        tasks.push(tokio::spawn(async move {
            http.post(url).json(&json!({"refresh_token": rt})).send().await.unwrap().status()
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one rotation wins");
}

#[tokio::test]
async fn logout_all_ends_every_device() {
    let app = TestApp::spawn().await;
    let laptop = app.signed_in("ivan@example.com").await;
    let phone = Tokens::from(&app.login("ivan@example.com", PASSWORD).await);
    let r = app.post_auth("/v1/auth/logout-all", &laptop.access, &json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for t in [&laptop, &phone] {
        assert_eq!(app.status_of_me(&t.access).await, StatusCode::UNAUTHORIZED);
        assert_eq!(app.refresh(&t.refresh).await.status(), StatusCode::UNAUTHORIZED);
    }
    // Signing in again works.
    let fresh = Tokens::from(&app.login("ivan@example.com", PASSWORD).await);
    assert_eq!(app.status_of_me(&fresh.access).await, StatusCode::OK);
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_one_by_one() {
    let app = TestApp::spawn().await;
    let a = app.signed_in("judy@example.com").await;
    let b = Tokens::from(&app.login("judy@example.com", PASSWORD).await);
    let list: Vec<Value> = app.get_auth("/v1/me/sessions", &a.access).await.json().await.unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], a.session.as_str());
    assert_eq!(current[0]["device_name"], "test");
    assert_eq!(current[0]["ip"], "127.0.0.1");
    assert!(current[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // Someone else's session id is not found, and nothing happens to it.
    let mallory = app.signed_in("mallory@example.com").await;
    let r = app
        .http
        .delete(app.url(&format!("/v1/me/sessions/{}", b.session)))
        .bearer_auth(&mallory.access)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.status_of_me(&b.access).await, StatusCode::OK);

    let r = app
        .http
        .delete(app.url(&format!("/v1/me/sessions/{}", b.session)))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.status_of_me(&b.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&b.refresh).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.status_of_me(&a.access).await, StatusCode::OK, "the other device stays signed in");
}

#[tokio::test]
async fn password_change_ends_other_sessions_and_keeps_this_one() {
    let app = TestApp::spawn().await;
    let here = app.signed_in("ken@example.com").await;
    let there = Tokens::from(&app.login("ken@example.com", PASSWORD).await);
    let new_pw = "a brand new passphrase";

    let wrong = app
        .post_auth(
            "/v1/me/password",
            &here.access,
            &json!({"current_password": "nope nope nope", "new_password": new_pw}),
        )
        .await;
    assert_problem(wrong, StatusCode::FORBIDDEN, "invalid_current_password").await;
    let weak = app
        .post_auth(
            "/v1/me/password",
            &here.access,
            &json!({"current_password": PASSWORD, "new_password": "password1234"}),
        )
        .await;
    let body = assert_problem(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert_eq!(body["errors"][0]["code"], "too_common");
    // Nothing changed so far.
    assert_eq!(app.status_of_me(&there.access).await, StatusCode::OK);

    let ok = app
        .post_auth("/v1/me/password", &here.access, &json!({"current_password": PASSWORD, "new_password": new_pw}))
        .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.status_of_me(&here.access).await, StatusCode::OK);
    assert_eq!(app.status_of_me(&there.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&there.refresh).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&here.refresh).await.status(), StatusCode::OK);

    let old = app.post("/v1/auth/login", &json!({"login": "ken@example.com", "password": PASSWORD})).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    app.login("ken@example.com", new_pw).await;
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let app = TestApp::spawn().await;
    let out = app.signed_in("leo@example.com").await;
    let kept = Tokens::from(&app.login("leo@example.com", PASSWORD).await);
    let everywhere = app.signed_in("mia@example.com").await;
    app.post_auth("/v1/auth/logout", &out.access, &json!({})).await;
    app.post_auth("/v1/auth/logout-all", &everywhere.access, &json!({})).await;

    let app = app.restart().await;
    assert_problem(app.get_auth("/v1/me", &out.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    assert_problem(app.get_auth("/v1/me", &everywhere.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    assert_eq!(app.refresh(&out.refresh).await.status(), StatusCode::UNAUTHORIZED);
    // What was not revoked still works, with the same keys.
    assert_eq!(app.status_of_me(&kept.access).await, StatusCode::OK);
    assert_eq!(app.refresh(&kept.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn role_change_refuses_old_tokens_and_refresh_carries_new_roles() {
    let app = TestApp::spawn().await;
    let t = app.signed_in("nina@example.com").await;
    app.svc()
        .accounts
        .set_roles(&authd::service::Principal::Operator, "nina@example.com", vec!["moderator".into()])
        .await
        .unwrap();
    assert_problem(app.get_auth("/v1/me", &t.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    let fresh = Tokens::from(&app.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    let me: Value = app.get_auth("/v1/me", &fresh.access).await.json().await.unwrap();
    assert_eq!(me["roles"], json!(["moderator"]));
    let claims = crate::support::claims_of(&fresh.access);
    assert_eq!(claims["roles"], json!(["moderator"]));
}
