//! PostgreSQL goes down under a running node, and comes back: readiness fails, writes answer
//! 503 problem+json, token checks keep working from memory, and everything recovers without a
//! restart. The test runs a PostgreSQL server of its own, to stop it.

use std::{process::Command, time::Duration};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, PrivatePostgres, TestApp, Tokens, assert_problem, use_postgres};

async fn ready(app: &TestApp) -> StatusCode {
    app.http.get(app.url("/readyz")).send().await.unwrap().status()
}

#[tokio::test]
async fn postgres_down_then_back_without_a_restart() {
    let Some(pg) = PrivatePostgres::create() else { return };
    let app = TestApp::spawn_with(|cfg| {
        use_postgres(cfg, &pg.url());
        cfg.storage.connect_timeout = authd::config::HumanDuration::secs(2);
    })
    .await;
    app.register("sam@example.com").await;
    let t = Tokens::from(&app.login("sam@example.com", PASSWORD).await);
    assert_eq!(ready(&app).await, StatusCode::OK);
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);

    pg.stop();
    assert_eq!(ready(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    // Token checks need no database.
    let r = app.post_auth("/v1/authz/check", &t.access, &json!({"permission": "reports:read"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Nor does the profile of a user read lately: `/v1/me` is served from memory.
    let me: serde_json::Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["email"], "sam@example.com");
    // Writes say so, in the usual format, with nothing about the database's insides.
    let r = app.post("/v1/auth/register", &json!({"email": "tess@example.com", "password": PASSWORD})).await;
    assert!(r.headers().contains_key("retry-after"));
    let body = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable").await;
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");

    pg.start();
    let mut back = false;
    for _ in 0..100 {
        if ready(&app).await == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "ready again once PostgreSQL is back");
    app.register("tess@example.com").await;
    let r = app.refresh(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Nothing written before the outage was lost, and the revocation feed still works.
    let again = Tokens::from(&app.login("sam@example.com", PASSWORD).await);
    assert_eq!(app.post_auth("/v1/auth/logout", &again.access, &json!({})).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.status_of_me(&again.access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tls_to_postgres_is_verified_against_the_configured_ca() {
    let Some(pg) = PrivatePostgres::create_with(true) else { return };
    let ca = pg.dir.join("ca.pem");
    let app = TestApp::spawn_with(|cfg| {
        use_postgres(cfg, &pg.url());
        cfg.storage.tls = true;
        cfg.storage.tls_ca = Some(ca.clone());
    })
    .await;
    app.register("ursula@example.com").await;
    let t = Tokens::from(&app.login("ursula@example.com", PASSWORD).await);
    assert_eq!(app.refresh(&t.refresh).await.status(), StatusCode::OK);

    // The connections really are encrypted: the server says so.
    let tls_connections = {
        let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let row = client
            .query_one("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.application_name = 'authd'", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    assert!(tls_connections >= 1, "authd's connections use TLS");

    // A certificate from another CA is refused: the node does not start.
    let stranger = pg.dir.join("stranger.pem");
    let made = Command::new("sh")
        .args(["-c", &format!("openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -out {} -days 1 -subj '/CN=other' 2>/dev/null", stranger.display())])
        .status()
        .unwrap();
    assert!(made.success());
    let mut cfg = crate::support::test_config(&std::env::temp_dir());
    use_postgres(&mut cfg, &pg.url());
    cfg.storage.tls = true;
    cfg.storage.tls_ca = Some(stranger);
    let refused = authd::server::Application::build(cfg).await.err().map(|e| format!("{e:#}"));
    let refused = refused.expect("a server certificate from an unknown CA is refused");
    assert!(refused.contains("TLS"), "{refused}");
}
