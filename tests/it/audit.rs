//! The audit log: every security-relevant event, no secrets, queries, the CLI.

use std::time::Duration;

use authd::config::{HumanDuration, Limit};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, Tokens, assert_problem};

async fn audit(app: &TestApp, token: &str, query: &str) -> Value {
    // Failed logins and throttling are written by a batching writer: until it has written.
    app.svc().flush().await;
    let r = app.get_auth(&format!("/v1/admin/audit{query}"), token).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn names(page: &Value) -> Vec<String> {
    page["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn every_security_event_is_recorded_without_secrets() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login.per_account = Limit::new(1, 60, 6);
        c.rate_limit.general.per_ip = Limit::new(100_000, 1, 100_000);
    })
    .await;
    let admin = app.admin("auditor@example.com").await;
    let me: Value = app.get_auth("/v1/me", &admin.access).await.json().await.unwrap();
    let admin_id = me["id"].as_str().unwrap().to_owned();

    let user = app.signed_in("subject@example.com").await;
    let wrong =
        app.post("/v1/auth/login", &json!({"login": "subject@example.com", "password": "wrong password"})).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let second: Value = app.refresh(&user.refresh).await.json().await.unwrap();
    let second = Tokens::from(&second);
    assert_eq!(app.refresh(&user.refresh).await.status(), StatusCode::UNAUTHORIZED, "reuse");
    let again = Tokens::from(&app.login("subject@example.com", PASSWORD).await);
    let new_pw = "an entirely new passphrase";
    let r = app
        .post_auth("/v1/me/password", &again.access, &json!({"current_password": PASSWORD, "new_password": new_pw}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let other = Tokens::from(&app.login("subject@example.com", new_pw).await);
    let r = app
        .http
        .delete(app.url(&format!("/v1/me/sessions/{}", other.session)))
        .bearer_auth(&again.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.post_auth("/v1/auth/logout", &again.access, &json!({})).await;
    let last = Tokens::from(&app.login("subject@example.com", new_pw).await);
    app.post_auth("/v1/auth/logout-all", &last.access, &json!({})).await;
    // Throttled: the per-account login limit is 6 in a burst.
    for _ in 0..3 {
        app.post("/v1/auth/login", &json!({"login": "subject@example.com", "password": "wrong again!"})).await;
    }

    let sid = app.svc().accounts.find_user("subject@example.com").await.unwrap().id.to_string();
    let call = async |method: Method, path: String, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(&path)).bearer_auth(&admin.access);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    };
    call(Method::PATCH, format!("/v1/admin/users/{sid}"), Some(json!({"roles": ["user", "moderator"]}))).await;
    call(Method::PATCH, format!("/v1/admin/users/{sid}"), Some(json!({"status": "disabled"}))).await;
    call(
        Method::POST,
        "/v1/admin/users".into(),
        Some(json!({"email": "made@example.com", "password": "chosen for them by root"})),
    )
    .await;
    call(Method::POST, "/v1/admin/roles".into(), Some(json!({"name": "ops", "permissions": ["ops:*"]}))).await;
    call(Method::POST, "/v1/admin/keys/rotate".into(), None).await;
    call(Method::DELETE, format!("/v1/admin/users/{sid}"), None).await;

    let page = audit(&app, &admin.access, "?limit=500").await;
    let events = names(&page);
    for expected in [
        "user.registered",
        "user.created",
        "user.logged_in",
        "user.login_failed",
        "token.refreshed",
        "refresh.reuse_detected",
        "user.password_changed",
        "session.revoked",
        "user.logged_out",
        "user.logged_out_everywhere",
        "auth.throttled",
        "user.updated",
        "role.created",
        "key.rotated",
        "user.deleted",
    ] {
        assert!(events.iter().any(|e| e == expected), "{expected} missing from {events:?}");
    }
    let dump = page.to_string();
    for secret in [
        PASSWORD,
        new_pw,
        "wrong password",
        "chosen for them by root",
        &user.refresh,
        &user.access,
        &second.refresh,
        &last.access,
    ] {
        assert!(!dump.contains(secret), "a secret is in the audit log");
    }
    let all = page["events"].as_array().unwrap();
    let deleted = all.iter().find(|e| e["event"] == "user.deleted").unwrap();
    assert_eq!(deleted["actor"], format!("user:{admin_id}"), "admin actions name the acting principal");
    assert_eq!(deleted["subject"], sid.as_str());
    assert_eq!(deleted["ip"], "127.0.0.1");
    let failed = all.iter().find(|e| e["event"] == "user.login_failed").unwrap();
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["details"]["reason"], "invalid_credentials");
    // Newest first.
    let times: Vec<&str> = all.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Filters.
    let failures = audit(&app, &admin.access, "?outcome=failure").await;
    assert!(failures["events"].as_array().unwrap().iter().all(|e| e["outcome"] == "failure"));
    let logins = audit(&app, &admin.access, &format!("?event=user.logged_in&user={sid}")).await;
    assert_eq!(names(&logins).len(), 4);
    let users = audit(&app, &admin.access, "?event=user").await;
    assert!(names(&users).iter().all(|e| e.starts_with("user.")));
    let r = app.get_auth("/v1/admin/audit?since=yesterday-ish", &admin.access).await;
    let b = assert_problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(b["errors"][0]["field"], "since", "{b}");
    // The right shape, but no such day.
    let r = app.get_auth("/v1/admin/audit?since=2026-02-30T00:00:00Z", &admin.access).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let r = app.get_auth("/v1/admin/audit", &last.access).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_see_their_own_security_events() {
    let app = TestApp::spawn().await;
    let alice = app.signed_in("alice.events@example.com").await;
    let bob = app.signed_in("bob.events@example.com").await;
    app.post("/v1/auth/login", &json!({"login": "alice.events@example.com", "password": "not it at all"})).await;
    app.svc().flush().await;
    let mine: Vec<Value> = app.get_auth("/v1/me/events", &alice.access).await.json().await.unwrap();
    let events: Vec<&str> = mine.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(events.contains(&"user.logged_in") && events.contains(&"user.login_failed"), "{events:?}");
    let alice_id = app.svc().accounts.find_user("alice.events@example.com").await.unwrap().id.to_string();
    assert!(mine.iter().all(|e| e["subject"] == alice_id.as_str()));
    let theirs: Vec<Value> = app.get_auth("/v1/me/events", &bob.access).await.json().await.unwrap();
    assert!(theirs.iter().all(|e| e["subject"] != alice_id.as_str()));
}

#[tokio::test]
async fn audit_pages_are_stable_while_events_arrive() {
    let app = TestApp::spawn().await;
    let admin = app.admin("pages@example.com").await;
    for i in 0..8 {
        app.register(&format!("e{i}@example.com")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?event=user.registered&limit=3&cursor={c}"),
            None => "?event=user.registered&limit=3".into(),
        };
        let page = audit(&app, &admin.access, &q).await;
        for e in page["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        app.register(&format!("late{}@example.com", seen.len())).await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len());
    assert_eq!(seen.len(), 8, "events added meanwhile are newer and not in older pages");
}

#[tokio::test]
async fn old_events_are_pruned_after_the_retention() {
    let app = TestApp::spawn_with(|c| c.audit.retention = HumanDuration::secs(1)).await;
    app.register("old@example.com").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.register("new@example.com").await;
    let removed = app.svc().audit.prune().await.unwrap();
    assert_eq!(removed, 1);
    let left =
        app.svc().audit.events(&authd::service::Principal::Operator, Default::default(), None, 100).await.unwrap();
    assert_eq!(left.len(), 1);
}

/// The live tail's read: events after a given one, oldest first, a page at a time, none
/// skipped, on both stores.
async fn events_after_an_event_come_oldest_first_a_page_at_a_time(app: &TestApp) {
    let by = authd::service::Principal::Operator;
    app.register("first.of.many@example.com").await;
    let newest = app.svc().audit.events(&by, Default::default(), None, 1).await.unwrap();
    let mut after = newest[0].id;
    for n in 0..7 {
        app.register(&format!("many{n}@example.com")).await;
    }
    // The tail reads only what has settled (two seconds old).
    assert!(app.svc().audit.newer(&by, after, 3).await.unwrap().is_empty(), "nothing yet");
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let mut seen = Vec::new();
    loop {
        let page = app.svc().audit.newer(&by, after, 3).await.unwrap();
        assert!(page.len() <= 3);
        assert!(page.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        let Some(last) = page.last() else { break };
        assert!(page[0].id > after);
        after = last.id;
        seen.extend(page.iter().filter(|e| e.event == "user.registered").map(|e| e.subject));
    }
    assert_eq!(seen.len(), 7, "every sign-up once: {seen:?}");
}

#[tokio::test]
async fn events_after_an_event_come_oldest_first_on_redb() {
    events_after_an_event_come_oldest_first_a_page_at_a_time(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn events_after_an_event_come_oldest_first_on_postgres() {
    let Some(db) = crate::support::postgres_db().await else { return };
    let app = TestApp::spawn_with(|c| crate::support::use_postgres(c, &db)).await;
    events_after_an_event_come_oldest_first_a_page_at_a_time(&app).await;
}
