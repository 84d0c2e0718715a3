//! Cookie mode: HttpOnly cookies instead of tokens in bodies, and double-submit CSRF.

use authd::config::TokenTransport;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, assert_problem};

/// name → (value, full Set-Cookie line)
fn set_cookies(r: &Response) -> Vec<(String, String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let line = v.to_str().unwrap().to_owned();
            let (name, rest) = line.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap().to_owned();
            (name.to_owned(), value, line)
        })
        .collect()
}

fn cookie<'a>(cookies: &'a [(String, String, String)], name: &str) -> &'a (String, String, String) {
    cookies.iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("cookie {name} set"))
}

#[tokio::test]
async fn cookie_mode_keeps_tokens_in_httponly_cookies_and_checks_csrf() {
    let app = TestApp::spawn_with(|c| c.tokens.transport = TokenTransport::Cookie).await;
    app.register("cookie@example.com").await;
    let r = app.post("/v1/auth/login", &json!({"login": "cookie@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookies = set_cookies(&r);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none(), "{body}");
    assert!(body["session_id"].is_string());

    let (_, access, line) = cookie(&cookies, "__Host-authd_access");
    for attr in ["Path=/;", "HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(line.contains(attr), "{line} has {attr}");
    }
    assert!(!line.contains("Domain"));
    let (_, refresh, line) = cookie(&cookies, "__Secure-authd_refresh");
    assert!(line.contains("Path=/v1/auth") && line.contains("HttpOnly") && line.contains("Secure"), "{line}");
    let (_, csrf, line) = cookie(&cookies, "__Host-authd_csrf");
    assert!(!line.contains("HttpOnly") && line.contains("Secure"), "the CSRF cookie is readable: {line}");

    let jar = format!("__Host-authd_access={access}; __Secure-authd_refresh={refresh}; __Host-authd_csrf={csrf}");
    let with = |req: reqwest::RequestBuilder| req.header("cookie", jar.clone());

    // Reads need no CSRF token.
    assert_eq!(with(app.http.get(app.url("/v1/me"))).send().await.unwrap().status(), StatusCode::OK);

    // Writes authenticated by cookie need the CSRF header, matching the cookie.
    let r = with(app.http.post(app.url("/v1/auth/refresh"))).send().await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = with(app.http.post(app.url("/v1/auth/refresh"))).header("x-csrf-token", "forged").send().await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r =
        with(app.http.post(app.url("/v1/auth/refresh"))).header("x-csrf-token", csrf.as_str()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rotated = set_cookies(&r);
    let (_, new_refresh, _) = cookie(&rotated, "__Secure-authd_refresh");
    let (_, new_access, _) = cookie(&rotated, "__Host-authd_access");
    let (_, new_csrf, _) = cookie(&rotated, "__Host-authd_csrf");
    assert_ne!(new_refresh, refresh);

    let jar2 = format!("__Host-authd_access={new_access}; __Host-authd_csrf={new_csrf}");
    let r = app.http.post(app.url("/v1/auth/logout")).header("cookie", jar2.clone()).send().await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    assert_eq!(
        app.http.get(app.url("/v1/me")).header("cookie", jar2.clone()).send().await.unwrap().status(),
        StatusCode::OK
    );
    let r = app
        .http
        .post(app.url("/v1/auth/logout"))
        .header("cookie", jar2.clone())
        .header("x-csrf-token", new_csrf.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&r);
    for name in ["__Host-authd_access", "__Secure-authd_refresh", "__Host-authd_csrf"] {
        assert!(cookie(&cleared, name).2.contains("Max-Age=0"), "{name} cleared");
    }
    let r = app.http.get(app.url("/v1/me")).header("cookie", jar2).send().await.unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn bearer_requests_need_no_csrf_token_in_cookie_mode() {
    let app = TestApp::spawn_with(|c| {
        c.tokens.transport = TokenTransport::Cookie;
        c.tokens.access_cookie = false;
    })
    .await;
    app.register("mixed@example.com").await;
    let r = app.post("/v1/auth/login", &json!({"login": "mixed@example.com", "password": PASSWORD})).await;
    let cookies = set_cookies(&r);
    assert!(cookies.iter().all(|(n, _, _)| n != "__Host-authd_access"));
    let body: Value = r.json().await.unwrap();
    let access = body["access_token"].as_str().expect("access token in the body").to_owned();
    assert!(body.get("refresh_token").is_none());
    let r = app.post_auth("/v1/auth/logout-all", &access, &json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn both_mode_sets_cookies_and_returns_tokens() {
    let app = TestApp::spawn_with(|c| c.tokens.transport = TokenTransport::Both).await;
    app.register("both@example.com").await;
    let r = app.post("/v1/auth/login", &json!({"login": "both@example.com", "password": PASSWORD})).await;
    assert_eq!(set_cookies(&r).len(), 3);
    let body: Value = r.json().await.unwrap();
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    // Body mode still needs the refresh token in the body: without it there is no credential.
    let body_mode = TestApp::spawn().await;
    let r = body_mode.http.post(body_mode.url("/v1/auth/refresh")).json(&json!({})).send().await.unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[tokio::test]
async fn development_cookies_work_over_plain_http_on_loopback_only() {
    let app = TestApp::spawn_with(|c| {
        c.tokens.transport = TokenTransport::Cookie;
        c.tokens.insecure_dev_cookies = true;
    })
    .await;
    app.register("dev@example.com").await;
    let r = app.post("/v1/auth/login", &json!({"login": "dev@example.com", "password": PASSWORD})).await;
    let cookies = set_cookies(&r);
    let (_, _, line) = cookie(&cookies, "authd_access");
    assert!(!line.contains("Secure") && line.contains("HttpOnly"), "{line}");

    let mut cfg = authd::config::Config::default();
    cfg.tokens.insecure_dev_cookies = true;
    cfg.server.bind = "0.0.0.0:8080".parse().unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("tokens.insecure_dev_cookies"), "{err}");
}
