//! Authorization holes: role changes racing token minting, admins handing out more than they
//! hold, and malleable ES256 signatures.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use authd::service::{NewAccount, Principal};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, Tokens, assert_problem, call, claims_of};

const OP: &Principal = &Principal::Operator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_carrying_a_removed_role_works_after_the_demotion_returns() {
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.admin("boss@example.com").await;
    let (id, _) = app.user_with_roles("mo@example.com", &["moderator"]).await;
    let probe = format!("/v1/admin/users/{id}");
    let demoted = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for _ in 0..24 {
        let (app, demoted, probe) = (Arc::clone(&app), Arc::clone(&demoted), probe.clone());
        let mut refresh = Tokens::from(&app.login("mo@example.com", PASSWORD).await).refresh;
        loops.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(2500);
            while tokio::time::Instant::now() < deadline {
                let r = app.refresh(&refresh).await;
                if r.status() != StatusCode::OK {
                    break;
                }
                let t = Tokens::from(&r.json::<Value>().await.unwrap());
                refresh = t.refresh.clone();
                let after = demoted.load(Ordering::SeqCst);
                let status = app.get_auth(&probe, &t.access).await.status();
                seen.push((t.access, after, status));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = call(&app, &admin.access, Method::PATCH, &probe, Some(json!({"roles": ["user"]}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    demoted.store(true, Ordering::SeqCst);
    let mut old_role_tokens = Vec::new();
    let mut checked_after = 0;
    for l in loops {
        for (token, after, status) in l.await.unwrap() {
            let moderator = claims_of(&token)["roles"].as_array().unwrap().contains(&json!("moderator"));
            if moderator && after {
                checked_after += 1;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "a moderator token worked after the demotion");
            }
            if !moderator {
                assert_eq!(status, StatusCode::FORBIDDEN, "a `user` token may not read users");
            }
            if moderator {
                old_role_tokens.push(token);
            }
        }
    }
    eprintln!("moderator tokens used after the demotion: {checked_after} of {}", old_role_tokens.len());
    for t in &old_role_tokens {
        assert_problem(app.get_auth(&probe, t).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    }
    // Ever: every token that carries the old role is refused now, and after a restart.
    let app = Arc::try_unwrap(app).ok().unwrap().restart().await;
    for t in &old_role_tokens {
        assert_problem(app.get_auth(&probe, t).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    }
}

#[tokio::test]
async fn nobody_grants_creates_or_changes_beyond_their_own_permissions() {
    let app = TestApp::spawn().await;
    let svc = app.svc();
    svc.roles.create(OP, "usermgr", vec!["users:*".into()]).await.unwrap();
    svc.roles.create(OP, "clientmgr", vec!["clients:*".into()]).await.unwrap();
    svc.roles.create(OP, "rolemgr", vec!["roles:*".into(), "billing:read".into()]).await.unwrap();
    let (_, admin) = app.user_with_roles("boss@example.com", &["admin"]).await;
    let (admin2_id, admin2) = app.user_with_roles("boss2@example.com", &["admin"]).await;
    let admin2_sid = claims_of(&admin2.access)["sid"].as_str().unwrap().to_owned();
    let (mgr_id, mgr) = app.user_with_roles("mgr@example.com", &["usermgr"]).await;
    let (_, moder) = app.user_with_roles("mod@example.com", &["moderator"]).await;
    let (_, cm) = app.user_with_roles("cm@example.com", &["clientmgr"]).await;
    let (_, rm) = app.user_with_roles("rm@example.com", &["rolemgr"]).await;
    let (victim_id, _) = app.user_with_roles("victim@example.com", &["user"]).await;
    let admin_client = svc
        .clients
        .create(
            OP,
            authd::service::NewClient { name: "root-bot".into(), roles: vec!["admin".into()], ..Default::default() },
        )
        .await
        .unwrap();
    let disabled_admin = svc
        .accounts
        .create_user(
            OP,
            NewAccount {
                email: Some("sleeping@example.com".into()),
                roles: vec!["admin".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    svc.accounts.set_status(OP, "sleeping@example.com", authd::model::UserStatus::Disabled).await.unwrap();
    let users_before = format!("{:?}", svc.accounts.list_users().await.unwrap());
    let roles_before = svc.roles.list(&authd::service::Principal::Operator).await.unwrap();
    let clients_before = format!("{:?}", svc.clients.list(OP).await.unwrap());

    let u = |id: &str| format!("/v1/admin/users/{id}");
    type Case<'a> = (&'a str, &'a Tokens, Method, String, Option<Value>, &'a str);
    let cases: Vec<Case> = vec![
        ("make itself admin", &mgr, Method::PATCH, u(&mgr_id), Some(json!({"roles": ["admin"]})), "role_not_grantable"),
        (
            "make another admin",
            &mgr,
            Method::PATCH,
            u(&victim_id),
            Some(json!({"roles": ["admin"]})),
            "role_not_grantable",
        ),
        (
            "grant a role with permissions it lacks",
            &mgr,
            Method::PATCH,
            u(&victim_id),
            Some(json!({"roles": ["moderator"]})),
            "role_not_grantable",
        ),
        (
            "create an admin",
            &mgr,
            Method::POST,
            "/v1/admin/users".into(),
            Some(json!({"email": "evil@example.com", "password": PASSWORD, "roles": ["admin"]})),
            "role_not_grantable",
        ),
        (
            "disable an admin",
            &mgr,
            Method::PATCH,
            u(&admin2_id),
            Some(json!({"status": "disabled"})),
            "target_exceeds_caller",
        ),
        (
            "disable an admin with users:disable",
            &moder,
            Method::PATCH,
            u(&admin2_id),
            Some(json!({"status": "disabled"})),
            "target_exceeds_caller",
        ),
        (
            "re-enable a disabled admin",
            &moder,
            Method::PATCH,
            u(&disabled_admin.id.to_string()),
            Some(json!({"status": "active"})),
            "target_exceeds_caller",
        ),
        (
            "rename an admin",
            &mgr,
            Method::PATCH,
            u(&admin2_id),
            Some(json!({"username": "pwned"})),
            "target_exceeds_caller",
        ),
        ("delete an admin", &mgr, Method::DELETE, u(&admin2_id), None, "target_exceeds_caller"),
        (
            "end an admin's sessions",
            &moder,
            Method::DELETE,
            format!("{}/sessions", u(&admin2_id)),
            None,
            "target_exceeds_caller",
        ),
        (
            "end one session of an admin",
            &moder,
            Method::DELETE,
            format!("{}/sessions/{admin2_sid}", u(&admin2_id)),
            None,
            "target_exceeds_caller",
        ),
        (
            "create an admin client",
            &cm,
            Method::POST,
            "/v1/admin/clients".into(),
            Some(json!({"name": "evil-bot", "roles": ["admin"]})),
            "role_not_grantable",
        ),
        (
            "take an admin client's secret",
            &cm,
            Method::POST,
            format!("/v1/admin/clients/{}/rotate-secret", admin_client.client_id),
            None,
            "target_exceeds_caller",
        ),
        (
            "delete an admin client",
            &cm,
            Method::DELETE,
            format!("/v1/admin/clients/{}", admin_client.client_id),
            None,
            "target_exceeds_caller",
        ),
        (
            "create a role with *",
            &rm,
            Method::POST,
            "/v1/admin/roles".into(),
            Some(json!({"name": "god", "permissions": ["*"]})),
            "permission_not_held",
        ),
        (
            "create a role with users:write",
            &rm,
            Method::POST,
            "/v1/admin/roles".into(),
            Some(json!({"name": "god", "permissions": ["users:write"]})),
            "permission_not_held",
        ),
        (
            "widen its own role",
            &rm,
            Method::PATCH,
            "/v1/admin/roles/rolemgr".into(),
            Some(json!({"grant": ["*"]})),
            "permission_not_held",
        ),
        (
            "edit a role beyond its own",
            &rm,
            Method::PATCH,
            "/v1/admin/roles/usermgr".into(),
            Some(json!({"grant": ["billing:read"]})),
            "permission_not_held",
        ),
        (
            "empty a role beyond its own",
            &rm,
            Method::PATCH,
            "/v1/admin/roles/usermgr".into(),
            Some(json!({"revoke": ["users:*"]})),
            "permission_not_held",
        ),
        (
            "delete a role beyond its own",
            &rm,
            Method::DELETE,
            "/v1/admin/roles/usermgr".into(),
            None,
            "permission_not_held",
        ),
    ];
    for (what, who, method, path, body, code) in cases {
        let r = call(&app, &who.access, method, &path, body).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
        let b = assert_problem(r, StatusCode::FORBIDDEN, code).await;
        assert!(b["detail"].as_str().unwrap().contains("do not hold"), "{what}: {b}");
    }
    assert_eq!(format!("{:?}", svc.accounts.list_users().await.unwrap()), users_before, "no user changed");
    let still = call(&app, &admin2.access, Method::GET, "/v1/me", None).await;
    assert_eq!(still.status(), StatusCode::OK, "the admin's session was not ended");
    assert_eq!(svc.roles.list(&authd::service::Principal::Operator).await.unwrap(), roles_before, "no role changed");
    assert_eq!(format!("{:?}", svc.clients.list(OP).await.unwrap()), clients_before, "no client changed");

    // Within their own permissions, the same callers succeed.
    let ok = [
        (&mgr, Method::PATCH, u(&victim_id), Some(json!({"status": "disabled"}))),
        (&moder, Method::PATCH, u(&victim_id), Some(json!({"status": "active"}))),
        (&cm, Method::POST, "/v1/admin/clients".into(), Some(json!({"name": "small-bot", "roles": ["user"]}))),
        (
            &rm,
            Method::POST,
            "/v1/admin/roles".into(),
            Some(json!({"name": "billing", "permissions": ["billing:read"]})),
        ),
        (&admin, Method::PATCH, u(&victim_id), Some(json!({"roles": ["admin"]}))),
    ];
    for (who, method, path, body) in ok {
        let r = call(&app, &who.access, method.clone(), &path, body).await;
        assert!(r.status().is_success(), "{method} {path}: {}", r.text().await.unwrap());
    }
}

/// n − s for a P-256 signature `r || s`.
fn high_s_twin(sig: &[u8]) -> Vec<u8> {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6,
        0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ];
    let mut out = sig.to_vec();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        out[32 + i] = d.rem_euclid(256) as u8;
    }
    out
}

#[tokio::test]
async fn an_es256_token_has_one_string_only() {
    let app = TestApp::spawn_with(|c| c.tokens.algorithm = authd::config::SigningAlgorithm::ES256).await;
    let mut t = app.signed_in("ec@example.com").await;
    for _ in 0..24 {
        let (signed, s64) = t.access.rsplit_once('.').unwrap();
        let sig = B64.decode(s64).unwrap();
        let twin = format!("{signed}.{}", B64.encode(high_s_twin(&sig)));
        assert_ne!(twin, t.access);
        assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
        assert_problem(app.get_auth("/v1/me", &twin).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
        t = Tokens::from(&app.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    }
}
