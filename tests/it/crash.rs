//! Crash safety: `authd serve` killed with SIGKILL in the middle of mixed write load, twenty
//! times in a row on one data directory. After every restart each acknowledged write is there,
//! no revoked token or used refresh token works, nothing half-done shows, and the database opens.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    PASSWORD,
    binary::{self, Server},
};

/// What the server acknowledged before it died.
#[derive(Default)]
struct Acknowledged {
    /// Registered emails.
    users: Vec<String>,
    /// Access tokens of sessions that were logged out.
    logged_out: Vec<String>,
    /// Refresh tokens rotated away (each must now count as reuse).
    used_refresh: Vec<String>,
    /// Access tokens minted before their user's roles changed.
    demoted: Vec<String>,
}

/// One client's mixed writes until the server dies; records what was acknowledged.
async fn load(base: String, client: usize, round: usize, ack: Arc<Mutex<Acknowledged>>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let post = |path: &str, body: Value, bearer: Option<String>| {
        let mut r = http.post(format!("{base}{path}")).json(&body);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    for n in 0.. {
        let email = format!("c{client}-r{round}-n{n}@example.com");
        match post("/v1/auth/register", json!({"email": email, "password": PASSWORD}), None).await {
            Ok(r) if r.status() == StatusCode::CREATED => ack.lock().unwrap().users.push(email.clone()),
            _ => return,
        }
        let Ok(r) = post("/v1/auth/login", json!({"login": email, "password": PASSWORD}), None).await else { return };
        let Ok(t) = r.json::<Value>().await else { return };
        let (access, refresh) =
            (t["access_token"].as_str().unwrap().to_owned(), t["refresh_token"].as_str().unwrap().to_owned());
        let Ok(r) = post("/v1/auth/refresh", json!({"refresh_token": refresh}), None).await else { return };
        if r.status() != StatusCode::OK {
            return;
        }
        ack.lock().unwrap().used_refresh.push(refresh);
        let Ok(t) = r.json::<Value>().await else { return };
        let access2 = t["access_token"].as_str().unwrap().to_owned();
        match post("/v1/auth/logout", json!({}), Some(access2)).await {
            Ok(r) if r.status() == StatusCode::NO_CONTENT => ack.lock().unwrap().logged_out.push(access.clone()),
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_under_write_load_lose_nothing_acknowledged() {
    let dir = crate::support::private_dir();
    twenty_sigkills(dir.path()).await;
}

#[tokio::test]
async fn twenty_sigkills_on_postgres_lose_nothing_acknowledged() {
    let Some(url) = crate::support::postgres_db().await else { return };
    let dir = crate::support::private_dir();
    // The server and the CLI both read config.toml from the directory they run in.
    let config = crate::support::postgres_config(&url);
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    twenty_sigkills(dir.path()).await;
}

/// Twenty rounds of load, each ended by SIGKILL, on the storage `d`'s config names; then checks.
async fn twenty_sigkills(d: &std::path::Path) {
    binary::ok(
        d,
        &["user", "add", "chief@example.com", "--role", "admin", "--password-stdin"],
        Some("steady old lighthouse keeper\n"),
    )
    .await;
    let ack = Arc::new(Mutex::new(Acknowledged::default()));
    let http = reqwest::Client::new();
    for round in 0..20 {
        let server = Server::start(d, &[]).await;
        // An admin demotes a user mid-load: tokens minted before must die with the change.
        let admin: Value = http
            .post(format!("{}/v1/auth/login", server.base))
            .json(&json!({"login": "chief@example.com", "password": "steady old lighthouse keeper"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let admin = admin["access_token"].as_str().unwrap().to_owned();
        let clients: Vec<_> = (0..3).map(|c| tokio::spawn(load(server.base.clone(), c, round, ack.clone()))).collect();
        tokio::time::sleep(Duration::from_millis(150 + (round as u64 * 37) % 200)).await;
        let victim = format!("victim{round}@example.com");
        let r = http
            .post(format!("{}/v1/auth/register", server.base))
            .json(&json!({"email": victim, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        ack.lock().unwrap().users.push(victim.clone());
        let t: Value = http
            .post(format!("{}/v1/auth/login", server.base))
            .json(&json!({"login": victim, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let victim_token = t["access_token"].as_str().unwrap().to_owned();
        let u: Value = http
            .get(format!("{}/v1/me", server.base))
            .bearer_auth(&victim_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = http
            .patch(format!("{}/v1/admin/users/{}", server.base, u["id"].as_str().unwrap()))
            .bearer_auth(&admin)
            .json(&json!({"roles": ["user", "moderator"]}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            ack.lock().unwrap().demoted.push(victim_token);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.kill().await;
        for c in clients {
            let _ = c.await;
        }
    }

    // The database opens cleanly, and everything acknowledged holds.
    let server = Server::start(d, &[]).await;
    let ack = std::mem::take(&mut *ack.lock().unwrap());
    assert!(ack.users.len() > 40 && ack.logged_out.len() > 20, "enough load ran: {} users", ack.users.len());
    for email in &ack.users {
        let r = http
            .post(format!("{}/v1/auth/login", server.base))
            .json(&json!({"login": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{email} was acknowledged");
    }
    for token in ack.logged_out.iter().chain(&ack.demoted) {
        let r = http.get(format!("{}/v1/me", server.base)).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a revoked token stays revoked");
    }
    for refresh in &ack.used_refresh {
        let r = http
            .post(format!("{}/v1/auth/refresh", server.base))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a used refresh token stays used");
    }
    // Nothing half-done: every stored user is whole (found by its login name, password set).
    server.kill().await;
    let out = binary::ok(d, &["user", "list", "--json"], None).await;
    let users: Vec<Value> = serde_json::from_str(&out).unwrap();
    for u in users.iter().filter(|u| u["email"] != "chief@example.com") {
        assert_eq!(u["has_password"], json!(true), "{u}");
        let shown = binary::ok(d, &["user", "show", u["email"].as_str().unwrap(), "--json"], None).await;
        assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["id"], u["id"]);
    }
}
