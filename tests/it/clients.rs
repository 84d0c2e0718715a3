//! Service clients: client_credentials, then introspection and policy checks.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_problem};

#[tokio::test]
async fn a_backend_gets_a_token_with_client_credentials_then_introspects() {
    let app = TestApp::spawn().await;
    let admin = app.admin("ops@example.com").await;
    let r = app
        .post_auth("/v1/admin/roles", &admin.access, &json!({"name": "backend", "permissions": ["tokens:introspect"]}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post_auth("/v1/admin/clients", &admin.access, &json!({"name": "billing-service", "roles": ["backend"]}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let (id, secret) =
        (created["client_id"].as_str().unwrap().to_owned(), created["client_secret"].as_str().unwrap().to_owned());
    let listed: Vec<Value> = app.get_auth("/v1/admin/clients", &admin.access).await.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("client_secret").is_none(), "the secret is shown once");
    let shown: Value = app.get_auth(&format!("/v1/admin/clients/{id}"), &admin.access).await.json().await.unwrap();
    assert_eq!((shown["name"].as_str(), shown.get("client_secret")), (Some("billing-service"), None), "{shown}");
    assert!(
        !app.svc()
            .audit
            .events(&authd::service::Principal::Operator, Default::default(), None, 100)
            .await
            .unwrap()
            .iter()
            .any(|e| e.details.to_string().contains(&secret))
    );

    let token = async |form: &[(&str, &str)], basic: Option<(&str, &str)>| {
        let mut req = app.http.post(app.url("/v1/token")).form(form);
        if let Some((u, p)) = basic {
            req = req.header("authorization", format!("Basic {}", B64.encode(format!("{u}:{p}"))));
        }
        req.send().await.unwrap()
    };
    let r = token(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    let backend = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(crate::support::claims_of(&backend)["client_id"], id.as_str());
    let basic = token(&[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(basic.status(), StatusCode::OK);

    // The backend checks a user's token.
    let user = app.signed_in("customer@example.com").await;
    let i: Value =
        app.post_auth("/v1/token/introspect", &backend, &json!({"token": user.access})).await.json().await.unwrap();
    assert_eq!(i["active"], true);
    let d: Value = app
        .post_auth(
            "/v1/authz/check",
            &backend,
            &json!({"token": user.access, "permission": "orders:read", "resource_owner": i["sub"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["allowed"], true);

    // Wrong credentials and grants.
    let r = token(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", "nope")], None).await;
    let a = oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r =
        token(&[("grant_type", "client_credentials"), ("client_id", "not-a-client"), ("client_secret", "nope")], None)
            .await;
    let b = oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(a, b);
    let r = token(&[("grant_type", "password"), ("client_id", &id), ("client_secret", &secret)], None).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;

    // Rotation: the old secret and its tokens stop; the new ones work.
    let rotated: Value = app
        .post_auth(&format!("/v1/admin/clients/{id}/rotate-secret"), &admin.access, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(
        app.post_auth("/v1/token/introspect", &backend, &json!({"token": user.access})).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = token(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)], None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r =
        token(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &new_secret)], None).await;
    let fresh = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post_auth("/v1/token/introspect", &fresh, &json!({"token": user.access})).await.status(),
        StatusCode::OK
    );

    // Deletion ends it.
    let r =
        app.http.delete(app.url(&format!("/v1/admin/clients/{id}"))).bearer_auth(&admin.access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.post_auth("/v1/token/introspect", &fresh, &json!({"token": user.access})).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r =
        token(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &new_secret)], None).await;
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r = app.post_auth("/v1/admin/clients", &user.access, &json!({"name": "sneaky"})).await;
    assert_problem(r, StatusCode::FORBIDDEN, "insufficient_permission").await;
}

/// An RFC 6749 §5.2 error: JSON with `error`, as OAuth client libraries read it.
async fn oauth_error(r: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(r.status(), status);
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}
