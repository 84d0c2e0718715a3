//! The admin console in Chromium: an admin signs in, finds a user by the start of their login,
//! disables them, grants another a role, ends a session, rotates a key and reads the trail of
//! what was just done; axe-core finds no serious or critical violation on any page.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Browser, PASSWORD, TestApp};

/// Every serious or critical accessibility violation on the page shown.
async fn assert_accessible(chromium: &Browser, page: &str) {
    if let Some(found) = chromium.serious_violations().await {
        assert!(found.is_empty(), "{page}: {}", serde_json::to_string_pretty(&found).unwrap());
    }
}

/// The console page's own path, once the browser has settled on it.
async fn lands_on(chromium: &Browser, path: &str) {
    for _ in 0..50 {
        if chromium.run("return location.pathname").await.as_str() == Some(path) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never reached {path}: at {}", chromium.run("return location.href").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_an_admin_acts_on_users_and_keys_and_reads_the_trail() {
    let Some(chromium) = Browser::start().await else { return };
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let zed = app.signed_in("zed1@example.com").await;
    let zed2 = app.signed_in("zed2@example.com").await;
    app.register("amy@example.com").await;

    // The console sends to the hosted login and back.
    chromium.open(&app.url("/ui/admin/users")).await;
    chromium.type_into("input[name=login]", &format!("root@example.com\u{E004}{PASSWORD}\u{E007}")).await;
    lands_on(&chromium, "/ui/admin/users").await;
    chromium.heading_becomes("Users").await;
    assert_accessible(&chromium, "users").await;

    // Found by the start of the login.
    chromium.type_into("#q", "zed\u{E007}").await;
    for _ in 0..50 {
        if chromium.run("return document.querySelectorAll('tbody tr').length").await == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let listed = chromium.text("tbody").await;
    assert!(listed.contains("zed1@example.com") && listed.contains("zed2@example.com"), "{listed}");
    assert!(!listed.contains("amy@example.com"), "{listed}");

    // Disabled: the user's next call is refused.
    chromium.click("tbody tr:first-child a").await;
    chromium.heading_becomes("User").await;
    assert_eq!(chromium.text("#login").await, "zed1@example.com");
    assert_accessible(&chromium, "user").await;
    chromium.click("form:has(input[value=disable]) button").await;
    for _ in 0..50 {
        if chromium.text("#status").await == "disabled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(chromium.text("#status").await, "disabled");
    assert_eq!(app.status_of_me(&zed.access).await, StatusCode::UNAUTHORIZED);

    // A role granted, a session ended.
    let v: Value = app.get_auth("/v1/admin/users?q=zed2", &root.access).await.json().await.unwrap();
    let id2 = v["users"][0]["id"].as_str().unwrap().to_owned();
    chromium.open(&app.url(&format!("/ui/admin/users/{id2}"))).await;
    chromium.type_into("#grant-role", "moderator\u{E007}").await;
    for _ in 0..50 {
        if chromium.text("#roles").await.contains("moderator") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(chromium.text("#roles").await.contains("moderator"));
    // The page already shows a status line (the role grant's): wait for the next page.
    let page = chromium.text("body").await;
    chromium.click("#sessions form:has(input[value=end_session]) button").await;
    for _ in 0..100 {
        if chromium.text("body").await != page {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    chromium.shown("p[role=status]").await;
    assert_eq!(app.refresh(&zed2.refresh).await.status(), StatusCode::UNAUTHORIZED);

    // A new signing key.
    chromium.open(&app.url("/ui/admin/keys")).await;
    assert_accessible(&chromium, "keys").await;
    let before = chromium.text("tbody").await.matches("retiring").count();
    chromium.click("form[action='/ui/admin/keys'] button").await;
    chromium.shown("p[role=status]").await;
    assert!(chromium.text("tbody").await.matches("retiring").count() > before);

    // A client created; its secret, shown once, works.
    chromium.open(&app.url("/ui/admin/clients")).await;
    assert_accessible(&chromium, "clients").await;
    chromium.type_into("#client-name", "billing").await;
    chromium.click("form:has(input[value=create]) button").await;
    chromium.shown("#client-secret").await;
    let (id, secret) = (chromium.text("#client-id").await, chromium.text("#client-secret").await);
    let form = [("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())];
    let r = app.http.post(app.url("/v1/token")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_accessible(&chromium, "clients, a secret shown").await;
    chromium.open(&app.url("/ui/admin/roles")).await;
    assert_accessible(&chromium, "roles").await;
    chromium.open(&app.url("/ui/admin/webhooks")).await;
    assert_accessible(&chromium, "webhooks").await;

    // The trail of what was just done.
    chromium.open(&app.url("/ui/admin/audit")).await;
    assert_accessible(&chromium, "audit").await;
    let trail = chromium.text("tbody").await;
    for event in ["user.disabled", "user.roles_changed", "key.rotated", "client.created"] {
        assert!(trail.contains(event), "{event}: {trail}");
    }
    // The live tail: what happens now appears on top, with no reload.
    chromium.shown("#audit-tail").await;
    app.register("late@example.com").await;
    let mut top = String::new();
    for _ in 0..100 {
        top = chromium.text("tbody tr:first-child").await;
        if top.contains("user.registered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(top.contains("user.registered"), "{top}");
    chromium.open(&app.url("/ui/admin")).await;
    assert_accessible(&chromium, "home").await;
}
