//! Key rotation.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{PASSWORD, TestApp, Tokens, header_of};

fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key() {
    let app = TestApp::spawn().await;
    let before = app.signed_in("sam@example.com").await;
    let old_kid = kid_of(&before.access);
    // The access-token key first, then the ID-token keys of the other algorithms.
    let first = jwks_kids(&app).await;
    assert_eq!((first.len(), first[0].as_str()), (3, old_kid.as_str()));

    let new = app.svc().keys.rotate(&authd::service::Principal::Operator).await.unwrap();
    assert_ne!(new.kid, old_kid);
    let after = Tokens::from(&app.login("sam@example.com", PASSWORD).await);
    assert_eq!(kid_of(&after.access), new.kid);
    assert_eq!(app.status_of_me(&before.access).await, StatusCode::OK, "old-key token still valid");
    assert_eq!(app.status_of_me(&after.access).await, StatusCode::OK);
    let kids = jwks_kids(&app).await;
    assert_eq!(kids.len(), 6, "JWKS lists the old and new key of each algorithm: {kids:?}");
    assert_eq!(kids[0], new.kid, "the signing key first");
    assert!(first.iter().all(|k| kids.contains(k)), "{kids:?}");

    let states: Vec<(String, String)> = app
        .svc()
        .keys
        .list(&authd::service::Principal::Operator)
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.state))
        .collect();
    assert!(states.contains(&(new.kid.clone(), "active".into())));
    assert!(states.contains(&(old_kid.clone(), "retiring".into())));

    // Keys survive a restart.
    let app = app.restart().await;
    assert_eq!(app.status_of_me(&before.access).await, StatusCode::OK);
    assert_eq!(app.status_of_me(&after.access).await, StatusCode::OK);
}

#[tokio::test]
async fn a_retired_key_verifies_nothing_and_leaves_the_jwks() {
    // Retirement follows the access-token lifetime: with a 10 s lifetime and no leeway the old key
    // is retired about 11 s after rotation.
    let app = TestApp::spawn_with(|c| {
        c.tokens.access_ttl = authd::config::HumanDuration::secs(10);
        c.tokens.leeway = authd::config::HumanDuration::secs(0);
    })
    .await;
    let t = app.signed_in("tess@example.com").await;
    let old_kid = kid_of(&t.access);
    app.svc().keys.rotate(&authd::service::Principal::Operator).await.unwrap();
    assert!(jwks_kids(&app).await.contains(&old_kid));
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    assert!(!jwks_kids(&app).await.contains(&old_kid));
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::UNAUTHORIZED);
    let states: Vec<String> = app
        .svc()
        .keys
        .list(&authd::service::Principal::Operator)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.kid == old_kid)
        .map(|k| k.state)
        .collect();
    assert_eq!(states, vec!["retired".to_string()]);
}
