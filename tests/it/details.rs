//! Smaller holes: caches mixing CORS answers, a user's feed naming admins, look-alike emails.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, assert_problem};

#[tokio::test]
async fn cors_answers_vary_by_origin() {
    let app = TestApp::spawn_with(|c| c.server.cors.origins = vec!["https://app.example.com".into()]).await;
    for origin in [Some("https://app.example.com"), Some("https://evil.example"), None] {
        let mut req = app.http.get(app.url("/.well-known/jwks.json"));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        let vary: Vec<String> =
            r.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_ascii_lowercase()).collect();
        assert!(vary.iter().any(|v| v.contains("origin")), "{origin:?}: vary {vary:?}");
    }
}

#[tokio::test]
async fn a_users_own_feed_does_not_name_the_admin_or_their_address() {
    let app = TestApp::spawn().await;
    let admin = app.admin("boss@example.com").await;
    let user: Value = app.register("watched@example.com").await;
    let id = user["id"].as_str().unwrap();
    let r = app
        .http
        .request(Method::PATCH, app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access)
        .json(&json!({"username": "watched"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t = app.login("watched@example.com", PASSWORD).await;
    let events: Vec<Value> =
        app.get_auth("/v1/me/events", t["access_token"].as_str().unwrap()).await.json().await.unwrap();
    let by_admin = events.iter().find(|e| e["event"] == "user.updated").expect("the admin's change is listed");
    assert_eq!(by_admin["actor"], "an administrator");
    assert!(by_admin.get("ip").is_none() && by_admin.get("user_agent").is_none(), "{by_admin}");
    let own = events.iter().find(|e| e["event"] == "user.logged_in").unwrap();
    assert_eq!(own["actor"], format!("user:{id}"));
    assert_eq!(own["ip"], "127.0.0.1");
    // The admin's own view keeps who did it.
    let all: Value = app.get_auth(&format!("/v1/admin/audit?user={id}"), &admin.access).await.json().await.unwrap();
    let full = all["events"].as_array().unwrap().iter().find(|e| e["event"] == "user.updated").unwrap();
    assert!(full["actor"].as_str().unwrap().starts_with("user:"), "{full}");
}

#[tokio::test]
async fn emails_are_compared_by_their_normal_form_and_mixed_scripts_are_refused() {
    let app = TestApp::spawn().await;
    let r = app.post("/v1/auth/register", &json!({"email": "\u{0430}dmin@example.com", "password": PASSWORD})).await;
    let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["code"], "mixed_script", "{body}");
    assert!(app.svc().accounts.list_users().await.unwrap().is_empty(), "nothing stored");

    let r = app.post("/v1/auth/register", &json!({"email": "anna@Bücher.example", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["email"], "anna@xn--bcher-kva.example");
    let r = app.post("/v1/auth/register", &json!({"email": "anna@xn--bcher-kva.example", "password": PASSWORD})).await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    app.login("ANNA@bücher.example", PASSWORD).await;
}
