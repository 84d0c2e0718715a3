//! Memory at rest: the real server holds no argon2 memory until passwords are checked, and gives
//! it back to the OS once they stop.

use std::time::Duration;

use serde_json::json;

use crate::support::{PASSWORD, binary::Server};

/// Resident anonymous memory: the heap and mappings, without the binary's own pages (which a
/// debug build has many of).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn argon2_memory_is_taken_for_logins_and_given_back_when_they_stop() {
    let dir = crate::support::private_dir();
    // OWASP's 19 MiB per hash, two hashing threads.
    let server = Server::start(
        dir.path(),
        &[
            ("AUTHD_PASSWORDS__ARGON2__MEMORY_KIB", "19456"),
            ("AUTHD_PASSWORDS__HASH_WORKERS", "2"),
            ("AUTHD_PASSWORDS__RELEASE_MEMORY_AFTER", "1s"),
        ],
    )
    .await;
    let pid = server.pid();
    let http = reqwest::Client::new();
    // Warm the rest of the server (routes, pools) with a request that hashes nothing.
    http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    let idle = rss_kib(pid);
    assert!(idle < 30 * 1024, "idle at start: {idle} KiB; no argon2 memory is held before the first login");

    // Twice: a block freed once must not stay resident for the next round.
    for round in 0..2 {
        let logins: Vec<_> = (0..6)
            .map(|i| {
                let (http, base) = (http.clone(), server.base.clone());
                tokio::spawn(async move {
                    let email = format!("m{round}-{i}@example.com");
                    let r = http
                        .post(format!("{base}/v1/auth/register"))
                        .json(&json!({"email": email, "password": PASSWORD}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    let r = http
                        .post(format!("{base}/v1/auth/login"))
                        .json(&json!({"login": email, "password": PASSWORD}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                })
            })
            .collect();
        for l in logins {
            l.await.unwrap();
        }
        let busy = rss_kib(pid);
        assert!(busy >= idle + 19 * 1024, "argon2 memory is resident while logins come: {idle} → {busy} KiB");

        let mut after = busy;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            after = rss_kib(pid);
            if after < idle + 8 * 1024 {
                break;
            }
        }
        assert!(after < idle + 8 * 1024, "given back once idle: {idle} → {busy} → {after} KiB");
    }
}

/// Threads of a running process that jemalloc started to hand freed pages back to the OS.
fn jemalloc_background_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.as_ref().unwrap().path().join("comm")).unwrap_or_default();
            comm.trim_end() == "jemalloc_bg_thd"
        })
        .count()
}

#[tokio::test]
async fn the_server_runs_on_jemalloc_as_configured_unless_the_operator_chose_otherwise() {
    // Compiled in: one arena, so one background thread returns its freed pages; the operator's
    // `_RJEM_MALLOC_CONF` overrides that.
    for (given, threads) in [(None, 1), (Some("background_thread:false"), 0), (Some("narenas:2"), 2)] {
        let dir = crate::support::private_dir();
        let env: Vec<(&str, &str)> = given.map(|g| ("_RJEM_MALLOC_CONF", g)).into_iter().collect();
        let server = Server::start(dir.path(), &env).await;
        let pid = server.pid();
        let r = reqwest::get(format!("{}/healthz", server.base)).await.unwrap();
        assert_eq!(r.status(), 200);
        // Each background thread starts (and names itself) on its own time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while jemalloc_background_threads(pid) != threads && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(jemalloc_background_threads(pid), threads, "given {given:?}");
    }
}
