//! Two authd nodes on one PostgreSQL database: what one does, the other honours within a second.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, Tokens, assert_problem, call, postgres_db, use_postgres};

async fn two_nodes() -> Option<(TestApp, TestApp)> {
    let url = postgres_db().await?;
    let a = TestApp::spawn_with(|cfg| use_postgres(cfg, &url)).await;
    let b = TestApp::spawn_with(|cfg| use_postgres(cfg, &url)).await;
    Some((a, b))
}

/// Polls `check` for up to ten seconds (a busy machine delays the change feed); true as soon
/// as it holds.
async fn soon(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

#[tokio::test]
async fn logout_on_one_node_is_honoured_by_the_other() {
    let Some((a, b)) = two_nodes().await else { return };
    a.register("nina@example.com").await;
    let t = Tokens::from(&b.login("nina@example.com", PASSWORD).await);
    assert_eq!(a.status_of_me(&t.access).await, StatusCode::OK);
    assert_eq!(b.status_of_me(&t.access).await, StatusCode::OK);
    let r = a.post_auth("/v1/auth/logout", &t.access, &json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(soon(async || b.status_of_me(&t.access).await == StatusCode::UNAUTHORIZED).await);
    assert_problem(b.get_auth("/v1/me", &t.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn a_profile_changed_on_one_node_shows_on_the_other() {
    let Some((a, b)) = two_nodes().await else { return };
    a.register("pia@example.com").await;
    let t = Tokens::from(&a.login("pia@example.com", PASSWORD).await);
    let locale = async |app: &TestApp| -> Value {
        let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
        me["locale"].clone()
    };
    // A reads (and keeps) the profile; B changes it.
    assert_ne!(locale(&a).await, "ru");
    let r = call(&b, &t.access, Method::PATCH, "/v1/me", Some(json!({"locale": "ru"}))).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    assert!(soon(async || locale(&a).await == "ru").await, "A forgets its copy when B writes");
    // And the node that wrote never shows the old value.
    assert_eq!(locale(&b).await, "ru");
}

#[tokio::test]
async fn one_refresh_token_raced_at_both_nodes_wins_once() {
    let Some((a, b)) = two_nodes().await else { return };
    a.register("otto@example.com").await;
    for _ in 0..5 {
        let t = Tokens::from(&a.login("otto@example.com", PASSWORD).await);
        let (ra, rb) = tokio::join!(a.refresh(&t.refresh), b.refresh(&t.refresh));
        let mut answers = Vec::new();
        for r in [ra, rb] {
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            answers.push((status, body));
        }
        let won: Vec<&(StatusCode, Value)> = answers.iter().filter(|(s, _)| *s == StatusCode::OK).collect();
        assert_eq!(won.len(), 1, "exactly one rotation wins: {answers:?}");
        let lost = answers.iter().find(|(s, _)| *s != StatusCode::OK).unwrap();
        assert_eq!((lost.0, lost.1["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("refresh_token_reused")));
        // Reuse ends the session, on both nodes, the winner's new tokens included.
        let winner = Tokens::from(&won[0].1);
        assert!(soon(async || b.status_of_me(&winner.access).await == StatusCode::UNAUTHORIZED).await);
        assert!(soon(async || a.status_of_me(&winner.access).await == StatusCode::UNAUTHORIZED).await);
        assert_eq!(a.refresh(&winner.refresh).await.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_key_rotated_on_one_node_signs_on_both() {
    let Some((a, b)) = two_nodes().await else { return };
    let admin = a.admin("root@example.com").await;
    let r = call(&a, &admin.access, Method::POST, "/v1/admin/keys/rotate", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let new_kid = r.json::<Value>().await.unwrap()["kid"].as_str().unwrap().to_owned();
    let jwks = async |node: &TestApp| -> Value {
        node.http.get(node.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap()
    };
    let same = soon(async || jwks(&a).await == jwks(&b).await).await;
    assert!(same, "both serve the same JWKS: {} vs {}", jwks(&a).await, jwks(&b).await);
    // A token B signs now carries the new key, and A accepts it.
    a.register("pia@example.com").await;
    let t = Tokens::from(&b.login("pia@example.com", PASSWORD).await);
    assert_eq!(crate::support::header_of(&t.access)["kid"], new_kid.as_str());
    assert_eq!(a.status_of_me(&t.access).await, StatusCode::OK);
}

#[tokio::test]
async fn a_client_secret_rotated_on_one_node_stops_working_on_the_other() {
    let Some((a, b)) = two_nodes().await else { return };
    let admin = a.admin("ops@example.com").await;
    let created: Value =
        a.post_auth("/v1/admin/clients", &admin.access, &json!({"name": "billing"})).await.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let old = created["client_secret"].as_str().unwrap().to_owned();
    let token = async |node: &TestApp, secret: &str| -> StatusCode {
        let form = [("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", secret)];
        node.http.post(node.url("/v1/token")).form(&form).send().await.unwrap().status()
    };
    // B knows (and keeps) the client; A rotates its secret, then removes it.
    assert_eq!(token(&b, &old).await, StatusCode::OK);
    let rotated: Value = a
        .post_auth(&format!("/v1/admin/clients/{id}/rotate-secret"), &admin.access, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert!(soon(async || token(&b, &old).await == StatusCode::UNAUTHORIZED).await, "B forgets the old secret");
    assert_eq!(token(&b, &new).await, StatusCode::OK);
    let r = a.http.delete(a.url(&format!("/v1/admin/clients/{id}"))).bearer_auth(&admin.access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(soon(async || token(&b, &new).await == StatusCode::UNAUTHORIZED).await, "B forgets the client");
}

#[tokio::test]
async fn a_role_taken_away_on_one_node_is_cut_off_on_the_other() {
    let Some((a, b)) = two_nodes().await else { return };
    let admin = a.admin("boss@example.com").await;
    let clerk = a.register("clerk@example.com").await;
    let id = clerk["id"].as_str().unwrap().to_owned();
    let r = call(
        &a,
        &admin.access,
        Method::PATCH,
        &format!("/v1/admin/users/{id}"),
        Some(json!({"roles": ["user", "moderator"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let t = Tokens::from(&b.login("clerk@example.com", PASSWORD).await);
    assert_eq!(b.status_of_me(&t.access).await, StatusCode::OK);
    let r = call(&a, &admin.access, Method::PATCH, &format!("/v1/admin/users/{id}"), Some(json!({"roles": ["user"]})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(soon(async || b.status_of_me(&t.access).await == StatusCode::UNAUTHORIZED).await);
    // A fresh login on B carries the new roles.
    let again = Tokens::from(&b.login("clerk@example.com", PASSWORD).await);
    let me: Value = b.get_auth("/v1/me", &again.access).await.json().await.unwrap();
    assert_eq!(me["roles"], json!(["user"]));
}

#[tokio::test]
async fn authd_migrate_moves_a_redb_file_to_postgres_and_everyone_signs_in_there() {
    let Some(url) = postgres_db().await else { return };
    let mut old = TestApp::spawn().await;
    old.register("quinn@example.com").await;
    let r = old
        .post("/v1/auth/register", &json!({"phone": "+14155550123", "username": "rosa", "password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let admin = old.admin("chief@example.com").await;
    let r = call(
        &old,
        &admin.access,
        Method::POST,
        "/v1/admin/roles",
        Some(json!({"name": "billing", "permissions": ["billing:*"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let quinn = Tokens::from(&old.login("quinn@example.com", PASSWORD).await);
    let loggedout = Tokens::from(&old.login("quinn@example.com", PASSWORD).await);
    assert_eq!(old.post_auth("/v1/auth/logout", &loggedout.access, &json!({})).await.status(), StatusCode::NO_CONTENT);
    old.shutdown().await;

    let from = old.dir.path().join("authd.redb");
    let args = ["migrate", "--from", from.to_str().unwrap(), "--to", &url];
    let first = crate::support::binary::ok(old.dir.path(), &args, None).await;
    let users_line = |out: &str| out.lines().find(|l| l.starts_with("users ")).unwrap_or_default().to_owned();
    assert_eq!(users_line(&first).split_whitespace().collect::<Vec<_>>(), ["users", "3", "3"], "{first}");
    assert!(first.lines().any(|l| l.starts_with("roles ")), "{first}");
    // Twice is harmless: the same tallies.
    let second = crate::support::binary::ok(old.dir.path(), &args, None).await;
    assert_eq!(first, second);

    let new = TestApp::spawn_with(|cfg| use_postgres(cfg, &url)).await;
    // The keys came along: a token signed before the move verifies after it.
    assert_eq!(new.status_of_me(&quinn.access).await, StatusCode::OK);
    // Revocations came along: the logged-out session stays out.
    assert_eq!(new.status_of_me(&loggedout.access).await, StatusCode::UNAUTHORIZED);
    // Sessions came along: the refresh token rotates there.
    assert_eq!(new.refresh(&quinn.refresh).await.status(), StatusCode::OK);
    for login in ["quinn@example.com", "+14155550123", "rosa"] {
        new.login(login, PASSWORD).await;
    }
    let chief = Tokens::from(&new.login("chief@example.com", PASSWORD).await);
    let roles: Value = new.get_auth("/v1/admin/roles", &chief.access).await.json().await.unwrap();
    assert!(roles.as_array().unwrap().iter().any(|r| r["name"] == "billing"), "{roles}");
}
