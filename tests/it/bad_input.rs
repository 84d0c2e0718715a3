//! Every bad input gets a 4xx problem+json with a stable code, and nothing stored changes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use reqwest::Method;

use crate::support::{PASSWORD, TestApp, assert_problem, call};

/// Everything stored about users, to compare before and after a refused request.
async fn snapshot(app: &TestApp) -> String {
    serde_json::to_string(&app.svc().accounts.list_users().await.unwrap()).unwrap()
}

#[tokio::test]
async fn malformed_requests_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.register("owner@example.com").await;
    let admin = app.admin("root@example.com").await;
    let before = snapshot(&app).await;
    let raw = |body: &'static str, ct: &'static str| {
        app.http.post(app.url("/v1/auth/register")).header("content-type", ct).body(body).send()
    };
    // (case, answer, status, code, the field errors[] names)
    let cases: Vec<(&str, reqwest::Response, StatusCode, &str, Option<&str>)> = vec![
        (
            "malformed JSON",
            raw("{\"email\": \"a@example.com\",", "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("body"),
        ),
        (
            "not an object",
            raw("[1,2,3]", "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("body"),
        ),
        ("empty body", raw("", "application/json").await.unwrap(), StatusCode::BAD_REQUEST, "validation_failed", None),
        (
            // The schema allows no password (`passwords.optional`); the rule refuses it.
            "missing password",
            raw("{\"email\":\"new@example.com\"}", "application/json").await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("password"),
        ),
        (
            "wrong type",
            raw("{\"email\":[\"a\"],\"password\":\"x\"}", "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            "a boolean is not a string",
            raw("{\"email\":\"new@example.com\",\"password\":true}", "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("password"),
        ),
        (
            "unknown field",
            raw(
                "{\"email\":\"new@example.com\",\"password\":\"a fine passphrase\",\"roles\":[\"admin\"]}",
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("roles"),
        ),
        (
            "too long",
            app.post(
                "/v1/auth/register",
                &json!({"email": format!("{}@example.com", "a".repeat(300)), "password": PASSWORD}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            "neither email nor phone",
            app.post("/v1/auth/register", &json!({"username": "lonely", "password": PASSWORD})).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            "a boolean token",
            app.post("/v1/auth/refresh", &json!({"refresh_token": false})).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("refresh_token"),
        ),
        (
            "unknown field in an optional body",
            app.post("/v1/auth/refresh", &json!({"refresh_token": "x", "extra": 1})).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("extra"),
        ),
        (
            "wrong content type",
            raw("email=new@example.com", "text/plain").await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "no content type",
            app.http.post(app.url("/v1/auth/register")).body("{}").send().await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "bad path parameter",
            app.get_auth("/v1/admin/users/not-a-uuid", &admin.access).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("id"),
        ),
        (
            "bad query parameter",
            app.get_auth("/v1/admin/users?limit=many", &admin.access).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("limit"),
        ),
    ];
    for (name, resp, status, code, field) in cases {
        let body = assert_problem(resp, status, code).await;
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{name}");
        if let Some(field) = field {
            assert_eq!(body["errors"][0]["field"], field, "{name}: {body}");
        }
        assert!(!body.to_string().contains("a fine passphrase"), "{name} echoes a password: {body}");
        assert_eq!(snapshot(&app).await, before, "{name} changed stored data");
    }

    // A JSON boolean never becomes a role or client named "false".
    for (path, body) in [
        ("/v1/admin/roles", json!({"name": false, "permissions": []})),
        ("/v1/admin/clients", json!({"name": false})),
        ("/v1/admin/clients", json!({"name": 12})),
    ] {
        let r = call(&app, &admin.access, Method::POST, path, Some(body.clone())).await;
        let p = assert_problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(
            (p["errors"][0]["field"].as_str(), p["errors"][0]["code"].as_str()),
            (Some("name"), Some("wrong_type")),
            "{body}"
        );
    }
    let roles: Value = app.get_auth("/v1/admin/roles", &admin.access).await.json().await.unwrap();
    assert!(roles.as_array().unwrap().iter().all(|r| r["name"] != "false"), "{roles}");
    let clients: Value = app.get_auth("/v1/admin/clients", &admin.access).await.json().await.unwrap();
    assert_eq!(clients.as_array().unwrap().len(), 0, "{clients}");

    let huge = json!({"email": "big@example.com", "password": "x".repeat(100_000)});
    assert_problem(app.post("/v1/auth/register", &huge).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        .await;
    // No Content-Length: the body is cut at the limit and the request refused.
    let status = chunked_post(&app, "/v1/auth/register", &huge.to_string()).await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    assert_eq!(snapshot(&app).await, before);
}

/// Sends a chunked POST over a raw socket and returns the status line.
async fn chunked_post(app: &TestApp, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: authd\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn invalid_fields_are_named_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    app.register("taken@example.com").await;
    let before = snapshot(&app).await;
    let long = "x".repeat(257);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"email": "not-an-email", "password": PASSWORD}), "email", "invalid_email"),
        (json!({"email": "Name <a@example.com>", "password": PASSWORD}), "email", "invalid_email"),
        (json!({"email": "a@localhost", "password": PASSWORD}), "email", "invalid_email"),
        (json!({"phone": "4155552671", "password": PASSWORD}), "phone", "invalid_phone"),
        (json!({"phone": "+12345", "password": PASSWORD}), "phone", "invalid_phone"),
        (json!({"email": "u@example.com", "username": "a b", "password": PASSWORD}), "username", "invalid_format"),
        (json!({"email": "u@example.com", "username": "аdmin", "password": PASSWORD}), "username", "invalid_format"),
        (json!({"username": "onlyname", "password": PASSWORD}), "email", "required"),
        (json!({"email": "u@example.com", "password": "short"}), "password", "too_short"),
        (json!({"email": "u@example.com", "password": long}), "password", "too_long"),
        (json!({"email": "u@example.com", "password": "password1234"}), "password", "too_common"),
        (json!({"email": "u@example.com", "password": "qwertyuiop"}), "password", "too_common"),
        (json!({"email": "zelda@example.com", "password": "zelda-in-the-woods"}), "password", "contains_identifier"),
    ];
    for (body, field, code) in cases {
        let r = app.post("/v1/auth/register", &body).await;
        // What the document's schema can say is 400; rules beyond it are 422.
        let status = if matches!(code, "invalid_format" | "required") {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let p = assert_problem(r, status, "validation_failed").await;
        let errors = p["errors"].as_array().unwrap();
        assert!(errors.iter().any(|e| e["field"] == field && e["code"] == code), "{body}: {p}");
        assert_eq!(snapshot(&app).await, before, "{body} changed stored data");
    }
}

#[tokio::test]
async fn duplicates_conflict_whatever_the_spelling() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/v1/auth/register",
            &json!({"email": "uma@example.com", "username": "uma", "phone": "+14155550100", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let before = snapshot(&app).await;
    for body in [
        json!({"email": "UMA@Example.com", "password": PASSWORD}),
        json!({"email": "other@example.com", "username": "UMA", "password": PASSWORD}),
        json!({"phone": "+1 (415) 555-0100", "password": PASSWORD}),
    ] {
        assert_problem(app.post("/v1/auth/register", &body).await, StatusCode::CONFLICT, "conflict").await;
        assert_eq!(snapshot(&app).await, before, "{body}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = TestApp::spawn().await;
    assert_problem(app.http.get(app.url("/v1/nothing")).send().await.unwrap(), StatusCode::NOT_FOUND, "not_found")
        .await;
    // 405 names the methods the path does answer (RFC 9110 §15.5.6).
    for (method, path, allow) in [
        ("GET", "/v1/auth/login", "POST"),
        ("TRACE", "/healthz", "GET, HEAD"),
        ("TRACE", "/v1/me", "GET, PATCH, HEAD"),
        ("PUT", "/v1/admin/users/0190b7a8-9a4e-7bd1-8f7e-4a0c9b1e2d3f", "DELETE, GET, PATCH, HEAD"),
        ("GET", "/v1/me/sessions/not-a-uuid", "DELETE"),
    ] {
        let r = app.http.request(Method::from_bytes(method.as_bytes()).unwrap(), app.url(path)).send().await.unwrap();
        let allowed = r.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        assert_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
        assert_eq!(allowed.as_deref(), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn every_response_carries_the_safety_headers() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/v1/me", "/nowhere"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    let jwks = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
}
