//! Restarts with nothing failed: a client signs in, refreshes and reads `/v1/me` without pause
//! while the server is stopped (SIGTERM) and started again on the same database and port.
//! The only errors allowed are refused connections while it is down, which the client retries.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, binary::Server};

#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    refused: AtomicUsize,
    failed: std::sync::Mutex<Vec<String>>,
}

/// One request, sent again while the connection is refused; the answer's status and body.
async fn send(tally: &Tally, req: impl Fn() -> reqwest::RequestBuilder) -> Option<(StatusCode, Value)> {
    for _ in 0..500 {
        match req().send().await {
            Ok(r) => {
                let status = r.status();
                let body = r.json().await.unwrap_or(Value::Null);
                tally.done.fetch_add(1, Ordering::Relaxed);
                return Some((status, body));
            }
            Err(e) if e.is_connect() => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                tally.failed.lock().unwrap().push(format!("{e:?}"));
                return None;
            }
        }
    }
    tally.failed.lock().unwrap().push("down for more than 10 s".into());
    None
}

/// login → me → refresh → me, over and over, until `stop`.
async fn client(base: String, email: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    // A new connection per request: a refused one is then told apart from a broken one.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let fail = |what: String| tally.failed.lock().unwrap().push(what);
    while !stop.load(Ordering::Relaxed) {
        let login = json!({"login": email, "password": PASSWORD});
        let Some((s, t)) = send(&tally, || http.post(format!("{base}/v1/auth/login")).json(&login)).await else {
            continue;
        };
        if s != StatusCode::OK {
            fail(format!("login: {s} {t}"));
            continue;
        }
        let access = t["access_token"].as_str().unwrap_or_default().to_owned();
        let refresh = t["refresh_token"].as_str().unwrap_or_default().to_owned();
        match send(&tally, || http.get(format!("{base}/v1/me")).bearer_auth(&access)).await {
            Some((StatusCode::OK, _)) | None => {}
            Some((s, b)) => fail(format!("me: {s} {b}")),
        }
        let body = json!({"refresh_token": refresh});
        let Some((s, t)) = send(&tally, || http.post(format!("{base}/v1/auth/refresh")).json(&body)).await else {
            continue;
        };
        if s != StatusCode::OK {
            fail(format!("refresh: {s} {t}"));
            continue;
        }
        let access = t["access_token"].as_str().unwrap_or_default().to_owned();
        match send(&tally, || http.get(format!("{base}/v1/me")).bearer_auth(&access)).await {
            Some((StatusCode::OK, _)) | None => {}
            Some((s, b)) => fail(format!("me after refresh: {s} {b}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_fails_no_request() {
    let dir = crate::support::private_dir();
    let port = crate::support::free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [("AUTHD_SERVER__BIND", bind.as_str())];
    let server = Server::start(dir.path(), &env).await;
    let http = reqwest::Client::new();
    for n in 0..2 {
        let r = http
            .post(server.url("/v1/auth/register"))
            .json(&json!({"email": format!("loop{n}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..2)
        .map(|n| tokio::spawn(client(server.base.clone(), format!("loop{n}@example.com"), stop.clone(), tally.clone())))
        .collect();
    let mut server = server;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (status, log) = server.stop().await;
        assert!(status.success(), "SIGTERM exits 0:\n{}", log.join("\n"));
        server = Server::start(dir.path(), &env).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failed = tally.failed.lock().unwrap().clone();
    let (done, refused) = (tally.done.load(Ordering::Relaxed), tally.refused.load(Ordering::Relaxed));
    eprintln!("requests answered: {done}, refused connections retried: {refused}");
    assert!(failed.is_empty(), "{} failed of {done}: {failed:#?}", failed.len());
    assert!(done > 20 && refused > 0, "the clients ran through the restarts ({done} answered, {refused} refused)");
    server.stop().await;
}
