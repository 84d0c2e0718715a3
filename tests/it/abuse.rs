//! Abuse protection: rate limits, client IP behind proxies, brute-force slow-down, proof of work,
//! fail2ban, CORS and headers.

use std::time::Duration;

use authd::config::{HumanDuration, Limit};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, assert_problem, binary, client_from};

#[tokio::test]
async fn rate_limits_are_hit_and_recover_with_headers() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.register.per_ip = Limit::new(4, 1, 3);
    })
    .await;
    let mut remaining = Vec::new();
    for i in 0..3 {
        let r =
            app.post("/v1/auth/register", &json!({"email": format!("r{i}@example.com"), "password": PASSWORD})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["ratelimit-limit"], "3");
        remaining.push(r.headers()["ratelimit-remaining"].to_str().unwrap().parse::<u32>().unwrap());
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    let r = app.post("/v1/auth/register", &json!({"email": "r9@example.com", "password": PASSWORD})).await;
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(app.svc().accounts.find_user("r9@example.com").await.is_err(), "a limited request does nothing");
    // Other route classes are not affected.
    assert_eq!(app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = app.post("/v1/auth/register", &json!({"email": "r9@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::CREATED, "recovers at the configured rate");
}

#[tokio::test]
async fn per_account_login_limit_applies_across_addresses() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login.per_account = Limit::new(1, 60, 2);
        c.brute_force.free_failures = 100;
        c.brute_force.challenge_after = 100;
    })
    .await;
    app.register("acct@example.com").await;
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let r = client_from(ip)
            .post(app.url("/v1/auth/login"))
            .json(&json!({"login": "acct@example.com", "password": "wrong wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = client_from("127.0.0.3")
        .post(app.url("/v1/auth/login"))
        .json(&json!({"login": "ACCT@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.general.per_ip = Limit::new(1, 60, 2);
        c.server.trusted_proxies = vec!["127.0.0.2/32".parse().unwrap()];
    })
    .await;
    let get = |client: &reqwest::Client, xff: &str| {
        client.get(app.url("/.well-known/jwks.json")).header("x-forwarded-for", xff.to_owned()).send()
    };
    // A direct client rotating spoofed headers is still one client.
    let direct = client_from("127.0.0.1");
    let statuses: Vec<StatusCode> = vec![
        get(&direct, "198.51.100.1").await.unwrap().status(),
        get(&direct, "198.51.100.2").await.unwrap().status(),
        get(&direct, "198.51.100.3").await.unwrap().status(),
    ];
    assert_eq!(statuses, vec![StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    // Behind the trusted proxy each forwarded client has its own budget.
    let proxy = client_from("127.0.0.2");
    for i in 0..5 {
        assert_eq!(get(&proxy, &format!("6.6.6.6, 198.51.100.{}", 10 + i)).await.unwrap().status(), StatusCode::OK);
    }
    let same = "203.0.113.50";
    let statuses = [
        get(&proxy, same).await.unwrap().status(),
        get(&proxy, same).await.unwrap().status(),
        get(&proxy, same).await.unwrap().status(),
    ];
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS);

    // The session records the forwarded address only when it came through the proxy.
    app.register("xff@example.com").await;
    let t: Value = proxy
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", "192.0.2.77")
        .json(&json!({"login": "xff@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = direct
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", "192.0.2.99")
        .json(&json!({"login": "xff@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let sessions: Vec<Value> = client_from("127.0.0.9")
        .get(app.url("/v1/me/sessions"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ips: Vec<&str> = sessions.iter().map(|s| s["ip"].as_str().unwrap()).collect();
    ips.sort();
    assert_eq!(ips, vec!["127.0.0.1", "192.0.2.77"]);
}

#[tokio::test]
async fn a_flood_of_distinct_addresses_keeps_memory_bounded() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.max_entries = 300;
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let mut tasks = Vec::new();
    for batch in 0..8u32 {
        let (http, url) = (app.http.clone(), app.url("/.well-known/jwks.json"));
        tasks.push(tokio::spawn(async move {
            for i in 0..250u32 {
                let ip = std::net::Ipv4Addr::from(0x0A00_0000 + batch * 1000 + i);
                let r = http.get(&url).header("x-forwarded-for", ip.to_string()).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let held = app.svc().rate_limit_entries();
    assert!(held <= 300, "2,000 addresses, {held} buckets held");
}

#[tokio::test]
async fn failed_logins_slow_the_account_down_with_growing_delays_then_release() {
    let app = TestApp::spawn_with(|c| {
        c.brute_force.free_failures = 2;
        c.brute_force.base_delay = HumanDuration::secs(1);
        c.brute_force.max_delay = HumanDuration::secs(4);
        c.brute_force.challenge_after = 100;
    })
    .await;
    app.register("victim@example.com").await;
    let attempt =
        async |login: &str, pw: &str| app.post("/v1/auth/login", &json!({"login": login, "password": pw})).await;
    for login in ["victim@example.com", "ghost@example.com"] {
        for _ in 0..2 {
            assert_eq!(attempt(login, "guess guess").await.status(), StatusCode::UNAUTHORIZED);
        }
    }
    // Slowed down: even the right password waits, and an unknown account looks the same.
    let a = attempt("victim@example.com", PASSWORD).await;
    let first_wait: u64 = a.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let a = assert_problem(a, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let b = assert_problem(
        attempt("ghost@example.com", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    )
    .await;
    assert_eq!(a["title"], b["title"]);
    assert!((1..=2).contains(&first_wait), "{first_wait}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(attempt("victim@example.com", "guess again").await.status(), StatusCode::UNAUTHORIZED);
    let r = attempt("victim@example.com", PASSWORD).await;
    let second_wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(second_wait > first_wait, "the delay doubles: {first_wait} then {second_wait}");

    // Never a permanent lock: after the delay the owner gets in, and the count starts over.
    tokio::time::sleep(Duration::from_secs(second_wait)).await;
    assert_eq!(attempt("victim@example.com", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(attempt("victim@example.com", "guess guess").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_current_passwords_are_throttled_too() {
    let app = TestApp::spawn_with(|c| {
        c.brute_force.free_failures = 2;
        c.brute_force.base_delay = HumanDuration::secs(30);
    })
    .await;
    let t = app.signed_in("pwchange@example.com").await;
    let change = async |current: &str| {
        let body = json!({"current_password": current, "new_password": "another fine passphrase"});
        app.post_auth("/v1/me/password", &t.access, &body).await
    };
    for _ in 0..2 {
        assert_eq!(change("not my password").await.status(), StatusCode::FORBIDDEN);
    }
    assert_problem(change(PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

async fn challenge(app: &TestApp) -> String {
    let c: Value = app.http.post(app.url("/v1/auth/challenge")).send().await.unwrap().json().await.unwrap();
    assert_eq!(c["algorithm"], "sha256-leading-zero-bits");
    c["challenge"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn login_needs_a_solved_challenge_after_repeated_failures() {
    let app = TestApp::spawn_with(|c| {
        c.brute_force.free_failures = 100;
        c.brute_force.challenge_after = 3;
        c.challenge.difficulty = 10;
        // Whole seconds: a challenge lives 4 to 5 s, time enough on a busy machine.
        c.challenge.ttl = HumanDuration::secs(5);
    })
    .await;
    app.register("pow@example.com").await;
    let login = async |body: Value| app.post("/v1/auth/login", &body).await;
    for _ in 0..3 {
        assert_eq!(
            login(json!({"login": "pow@example.com", "password": "wrong!wrong"})).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let body = assert_problem(
        login(json!({"login": "pow@example.com", "password": PASSWORD})).await,
        StatusCode::UNAUTHORIZED,
        "challenge_required",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("/v1/auth/challenge"));

    // A wrong solution is refused.
    let c = challenge(&app).await;
    let nonce = authd::security::pow::solve(&c).unwrap();
    let wrong = (0u64..).map(|n| n.to_string()).find(|n| *n != nonce).unwrap();
    let r = login(json!({"login": "pow@example.com", "password": PASSWORD, "challenge": c, "nonce": wrong})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "challenge_failed").await;

    // A solved challenge with a wrong password is spent; replaying it fails.
    let r = login(json!({"login": "pow@example.com", "password": "still wrong", "challenge": c, "nonce": nonce})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = login(json!({"login": "pow@example.com", "password": PASSWORD, "challenge": c, "nonce": nonce})).await;
    let body = assert_problem(r, StatusCode::UNAUTHORIZED, "challenge_failed").await;
    assert!(body["detail"].as_str().unwrap().contains("already used"));

    // Expired challenges are refused.
    let old = challenge(&app).await;
    let old_nonce = authd::security::pow::solve(&old).unwrap();
    tokio::time::sleep(Duration::from_millis(6100)).await;
    let r =
        login(json!({"login": "pow@example.com", "password": PASSWORD, "challenge": old, "nonce": old_nonce})).await;
    let body = assert_problem(r, StatusCode::UNAUTHORIZED, "challenge_failed").await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));

    // Solved by the CLI's reference solver, with the right password: in.
    let c = challenge(&app).await;
    let nonce = binary::ok(app.dir.path(), &["challenge", "solve", &c], None).await.trim().to_owned();
    let r = login(json!({"login": "pow@example.com", "password": PASSWORD, "challenge": c, "nonce": nonce})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Success clears the account's failures, but not the address's: from elsewhere no challenge
    // is needed any more, from here it still is.
    let elsewhere = client_from("127.0.0.9")
        .post(app.url("/v1/auth/login"))
        .json(&json!({"login": "pow@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::OK);
    let here = login(json!({"login": "pow@example.com", "password": PASSWORD})).await;
    assert_problem(here, StatusCode::UNAUTHORIZED, "challenge_required").await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(|c| {
        c.server.cors.origins = vec!["https://app.example.com".into()];
        c.server.cors.allow_credentials = true;
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/v1/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert!(ok.status().is_success());
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    for evil in ["https://evil.example", "https://app.example.com.evil.com", "http://app.example.com", "null"] {
        let r = preflight(evil).await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none(), "{evil}");
        let r = app.http.get(app.url("/healthz")).header("origin", evil).send().await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none(), "{evil}");
    }
    let r = app.http.get(app.url("/healthz")).header("origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
}

#[tokio::test]
async fn security_headers_and_the_docs_page_policy() {
    let app = TestApp::spawn().await;
    let r = app.http.get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    let csp = docs.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self' 'unsafe-inline'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let login: Value = app.post("/v1/auth/login", &json!({})).await.json().await.unwrap();
    assert_eq!(login["status"], 400);
}

#[tokio::test]
async fn slow_requests_time_out() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn_with(|c| c.server.request_timeout = HumanDuration::secs(1)).await;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Promise a body and never send it.
    s.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("answered in time").unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(head.contains("request_timeout"), "{head}");
}

/// The failregex lines of the shipped fail2ban filter, as Rust regexes (`<HOST>` as fail2ban
/// expands it, roughly).
fn fail2ban_regexes() -> Vec<regex::Regex> {
    let conf =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/fail2ban/filter.d/authd.conf")).unwrap();
    let line = conf.lines().find_map(|l| l.strip_prefix("failregex = ")).expect("a failregex line");
    vec![regex::Regex::new(&line.replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)")).unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail2ban_filter_matches_real_log_lines() {
    for format in ["text", "json"] {
        let dir = crate::support::private_dir();
        let server = binary::Server::spawn(
            binary::serve(dir.path()).args(["--log-format", format]).env("AUTHD_BRUTE_FORCE__FREE_FAILURES", "2"),
        )
        .await;
        let http = reqwest::Client::new();
        for _ in 0..3 {
            http.post(server.url("/v1/auth/login"))
                .json(&json!({"login": "nobody@example.com", "password": "wrong guess"}))
                .send()
                .await
                .unwrap();
        }
        let log = server.kill().await;
        let regexes = fail2ban_regexes();
        let hits: Vec<(String, String)> = log
            .iter()
            .filter_map(|l| regexes.iter().find_map(|r| r.captures(l)))
            .map(|c| (c[0].split_whitespace().next().unwrap().to_owned(), c["host"].to_owned()))
            .collect();
        let failed = hits.iter().filter(|(e, _)| e == "auth_event=login_failed").count();
        let throttled = hits.iter().filter(|(e, _)| e == "auth_event=login_throttled").count();
        assert_eq!((failed, throttled), (2, 1), "{format}: {log:#?}");
        assert!(hits.iter().all(|(_, h)| h == "127.0.0.1"), "{format}: {hits:?}");
        assert!(log.iter().all(|l| !l.contains('\u{1b}')), "{format}: no colour codes in logs");
    }
}
