//! Roles, permissions, the admin API and policy checks.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, Tokens, assert_problem, call};

#[tokio::test]
async fn each_admin_endpoint_needs_its_permission() {
    let app = TestApp::spawn().await;
    let admin = app.admin("boss@example.com").await;
    let plain = app.signed_in("plain@example.com").await;
    let target: Value = app.register("target@example.com").await;
    let tid = target["id"].as_str().unwrap().to_owned();
    let (_, moderator) = app.user_with_roles("mod@example.com", &["moderator"]).await;

    // (method, path, body, moderator allowed)
    let cases: Vec<(Method, String, Option<Value>, bool)> = vec![
        (Method::GET, "/v1/admin/users".into(), None, true),
        (Method::GET, format!("/v1/admin/users/{tid}"), None, true),
        (Method::GET, format!("/v1/admin/users/{tid}/sessions"), None, true),
        (Method::PATCH, format!("/v1/admin/users/{tid}"), Some(json!({"status": "active"})), true),
        (Method::PATCH, format!("/v1/admin/users/{tid}"), Some(json!({"username": "targeted"})), false),
        (Method::POST, "/v1/admin/users".into(), Some(json!({"email": "new-by-admin@example.com"})), false),
        (Method::DELETE, format!("/v1/admin/users/{tid}/sessions"), None, true),
        (Method::GET, "/v1/admin/roles".into(), None, false),
        (
            Method::POST,
            "/v1/admin/roles".into(),
            Some(json!({"name": "support", "permissions": ["tickets:read"]})),
            false,
        ),
        (Method::PATCH, "/v1/admin/roles/support".into(), Some(json!({"grant": ["tickets:write"]})), false),
        (Method::GET, "/v1/admin/keys".into(), None, false),
        (Method::POST, "/v1/admin/keys/rotate".into(), None, false),
        (Method::DELETE, "/v1/admin/roles/support".into(), None, false),
        (Method::DELETE, format!("/v1/admin/users/{tid}"), None, false),
    ];
    for (method, path, body, moderator_ok) in cases {
        let r = call(&app, &plain.access, method.clone(), &path, body.clone()).await;
        assert_problem(r, StatusCode::FORBIDDEN, "insufficient_permission").await;
        let r = call(&app, &moderator.access, method.clone(), &path, body.clone()).await;
        if moderator_ok {
            assert!(r.status().is_success(), "moderator {method} {path}: {}", r.status());
        } else {
            assert_problem(r, StatusCode::FORBIDDEN, "insufficient_permission").await;
        }
        let r = call(&app, &admin.access, method.clone(), &path, body).await;
        assert!(r.status().is_success(), "admin {method} {path}: {} {}", r.status(), r.text().await.unwrap());
    }
    let r = app.http.get(app.url("/v1/admin/users")).send().await.unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_removed_demoted_or_disabled() {
    let app = TestApp::spawn().await;
    let admin = app.admin("only@example.com").await;
    let me: Value = app.get_auth("/v1/me", &admin.access).await.json().await.unwrap();
    let id = me["id"].as_str().unwrap().to_owned();
    for (method, body) in [
        (Method::PATCH, Some(json!({"roles": ["user"]}))),
        (Method::PATCH, Some(json!({"status": "disabled"}))),
        (Method::DELETE, None),
    ] {
        let r = call(&app, &admin.access, method, &format!("/v1/admin/users/{id}"), body).await;
        assert_problem(r, StatusCode::CONFLICT, "last_admin").await;
    }
    let err = app
        .svc()
        .accounts
        .set_roles(&authd::service::Principal::Operator, "only@example.com", vec!["user".into()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "last_admin");
    assert_eq!(app.status_of_me(&admin.access).await, StatusCode::OK, "nothing changed");

    // With a second admin, the first may step down.
    app.admin("second@example.com").await;
    let r =
        call(&app, &admin.access, Method::PATCH, &format!("/v1/admin/users/{id}"), Some(json!({"roles": ["user"]})))
            .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_problem(app.get_auth("/v1/me", &admin.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn custom_roles_grant_permissions_and_authz_check_explains() {
    let app = TestApp::spawn_with(|c| c.tokens.include_permissions = true).await;
    let admin = app.admin("root@example.com").await;
    let r = call(
        &app,
        &admin.access,
        Method::POST,
        "/v1/admin/roles",
        Some(json!({"name": "billing", "permissions": ["billing:refund"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let bad = call(
        &app,
        &admin.access,
        Method::POST,
        "/v1/admin/roles",
        Some(json!({"name": "bad", "permissions": ["Not A Permission"]})),
    )
    .await;
    // Not a permission's shape: the document's pattern refuses it.
    let b = assert_problem(bad, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(b["errors"][0]["field"], "permissions.0", "{b}");
    let dup =
        call(&app, &admin.access, Method::POST, "/v1/admin/roles", Some(json!({"name": "billing", "permissions": []})))
            .await;
    assert_problem(dup, StatusCode::CONFLICT, "conflict").await;

    let clerk: Value = app.register("clerk@example.com").await;
    let cid = clerk["id"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        &admin.access,
        Method::PATCH,
        &format!("/v1/admin/users/{cid}"),
        Some(json!({"roles": ["user", "billing"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r =
        call(&app, &admin.access, Method::PATCH, &format!("/v1/admin/users/{cid}"), Some(json!({"roles": ["nope"]})))
            .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "unknown_role").await;
    let t = Tokens::from(&app.login("clerk@example.com", PASSWORD).await);
    assert_eq!(crate::support::claims_of(&t.access)["permissions"], json!(["billing:refund"]));

    let check = async |token: &str, body: Value| -> Value {
        let r = call(&app, token, Method::POST, "/v1/authz/check", Some(body)).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    };
    let yes = check(&t.access, json!({"permission": "billing:refund"})).await;
    assert_eq!(yes, json!({"allowed": true, "reason": "granted by role `billing`"}));
    let no = check(&t.access, json!({"permission": "billing:void"})).await;
    assert_eq!(no["allowed"], false);
    let owner = check(&t.access, json!({"permission": "notes:edit", "resource_owner": cid})).await;
    assert_eq!(owner["allowed"], true);
    // An application with `tokens:introspect` asks about a user's token.
    let about = check(&admin.access, json!({"token": t.access, "permission": "billing:refund"})).await;
    assert_eq!(about["allowed"], true);
    let r = call(
        &app,
        &t.access,
        Method::POST,
        "/v1/authz/check",
        Some(json!({"token": admin.access, "permission": "x:y"})),
    )
    .await;
    assert_problem(r, StatusCode::FORBIDDEN, "insufficient_permission").await;
    // Wildcards: the admin role has `*`.
    assert_eq!(check(&admin.access, json!({"permission": "anything:at-all"})).await["allowed"], true);

    // Editing the role refuses tokens that carry its old permissions; a refresh carries the new.
    let r = call(
        &app,
        &admin.access,
        Method::PATCH,
        "/v1/admin/roles/billing",
        Some(json!({"revoke": ["billing:refund"], "grant": ["billing:*"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_problem(app.get_auth("/v1/me", &t.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    let t = Tokens::from(&app.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    assert_eq!(crate::support::claims_of(&t.access)["permissions"], json!(["billing:*"]));
    assert_eq!(check(&t.access, json!({"permission": "billing:void"})).await["allowed"], true);

    // Deleting a held role needs force, and then takes it from the holders.
    let r = call(&app, &admin.access, Method::DELETE, "/v1/admin/roles/billing", None).await;
    assert_problem(r, StatusCode::CONFLICT, "role_in_use").await;
    let r = call(&app, &admin.access, Method::DELETE, "/v1/admin/roles/billing?force=true", None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.svc().accounts.find_user("clerk@example.com").await.unwrap().roles, vec!["user".to_string()]);

    // Built-ins stay.
    let r = call(&app, &admin.access, Method::PATCH, "/v1/admin/roles/admin", Some(json!({"revoke": ["*"]}))).await;
    assert_problem(r, StatusCode::CONFLICT, "builtin_role").await;
    let r = call(&app, &admin.access, Method::DELETE, "/v1/admin/roles/user?force=true", None).await;
    assert_problem(r, StatusCode::CONFLICT, "builtin_role").await;
}

#[tokio::test]
async fn user_pages_are_stable_while_users_are_added() {
    let app = TestApp::spawn().await;
    let admin = app.admin("pager@example.com").await;
    for i in 0..6 {
        app.register(&format!("p{i}@example.com")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/users?limit=3&cursor={c}"),
            None => "/v1/admin/users?limit=3".into(),
        };
        let page: Value = app.get_auth(&path, &admin.access).await.json().await.unwrap();
        for u in page["users"].as_array().unwrap() {
            seen.push(u["email"].as_str().unwrap().to_owned());
        }
        // Someone registers between pages.
        if added < 2 {
            app.register(&format!("late{added}@example.com")).await;
            added += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no user twice: {seen:?}");
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert_eq!(seen[0], "pager@example.com");

    let filtered: Value =
        app.get_auth("/v1/admin/users?q=late&status=active&role=user", &admin.access).await.json().await.unwrap();
    assert_eq!(filtered["users"].as_array().unwrap().len(), 2);
    let r = app.get_auth("/v1/admin/users?status=sleeping", &admin.access).await;
    let b = assert_problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(b["errors"][0]["field"], "status", "{b}");
    let r = app.get_auth("/v1/admin/users?limit=0", &admin.access).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_admin_can_require_a_password_change() {
    let app = TestApp::spawn().await;
    let admin = app.admin("chief@example.com").await;
    let u = app.signed_in("forgetful@example.com").await;
    let id = app.svc().accounts.find_user("forgetful@example.com").await.unwrap().id;
    let r = call(
        &app,
        &admin.access,
        Method::PATCH,
        &format!("/v1/admin/users/{id}"),
        Some(json!({"force_password_reset": true})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = app.get_auth("/v1/me", &u.access).await.json().await.unwrap();
    assert_eq!(me["password_reset_required"], true);
    let r = app
        .post_auth(
            "/v1/me/password",
            &u.access,
            &json!({"current_password": PASSWORD, "new_password": "a fresh new passphrase"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let me: Value = app.get_auth("/v1/me", &u.access).await.json().await.unwrap();
    assert_eq!(me["password_reset_required"], false);
}
