//! Memory at rest: the real server holds no argon2 memory until passwords are checked, and gives
//! it back to the OS once they stop.

use std::time::Duration;

use serde_json::json;

use crate::{crash::serve_with, helpers::PASSWORD};

/// Resident anonymous memory: the heap and mappings, without the binary's own pages (which a
/// debug build has many of).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn argon2_memory_is_taken_for_logins_and_given_back_when_they_stop() {
    let dir = crate::helpers::private_dir();
    // OWASP's 19 MiB per hash, two hashing threads.
    let server = serve_with(
        dir.path(),
        &[
            ("AUTHD_PASSWORDS__ARGON2__MEMORY_KIB", "19456"),
            ("AUTHD_PASSWORDS__HASH_WORKERS", "2"),
            ("AUTHD_PASSWORDS__RELEASE_MEMORY_AFTER", "1s"),
            // glibc's defaults, under which its mmap threshold rises after each large free.
            ("GLIBC_TUNABLES", ""),
        ],
    )
    .await;
    let pid = server.child.id().unwrap();
    let http = reqwest::Client::new();
    // Warm the rest of the server (routes, pools) with a request that hashes nothing.
    http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    let idle = rss_kib(pid);
    assert!(idle < 30 * 1024, "idle at start: {idle} KiB; no argon2 memory is held before the first login");

    // Twice: glibc serves a block freed once from its heap next time, unless it is mapped apart.
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

/// The `GLIBC_TUNABLES` a running process was started with. glibc cuts the variable at each
/// ':' in place as it reads it, so the tunables after the first follow it in the environment
/// block as entries of their own; they are joined back here.
fn glibc_tunables(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut entries = environ.split(|b| *b == 0).filter_map(|v| std::str::from_utf8(v).ok());
    let first = entries.find_map(|v| v.strip_prefix("GLIBC_TUNABLES="))?;
    let rest = entries.take_while(|v| v.starts_with("glibc."));
    Some(std::iter::once(first).chain(rest).collect::<Vec<_>>().join(":"))
}

#[tokio::test]
async fn the_server_runs_with_glibc_tuned_for_it_unless_the_operator_chose_otherwise() {
    let tuned = "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072:glibc.malloc.tcache_max=256";
    for (given, expected) in
        [(None, tuned), (Some(""), ""), (Some("glibc.malloc.arena_max=4"), "glibc.malloc.arena_max=4")]
    {
        let dir = crate::helpers::private_dir();
        let env: Vec<(&str, &str)> = given.map(|g| ("GLIBC_TUNABLES", g)).into_iter().collect();
        let server = serve_with(dir.path(), &env).await;
        // The process started is the one serving, with its arguments and its output kept.
        let pid = server.child.id().unwrap();
        let r = reqwest::get(format!("{}/healthz", server.base)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(glibc_tunables(pid).as_deref(), Some(expected), "given {given:?}");
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmdline.ends_with("serve\0--log-format\0json\0"), "{cmdline:?}");
    }
}
