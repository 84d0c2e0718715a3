//! Rate limits in Redis: nodes count together, and a node whose Redis is gone counts alone
//! rather than failing. Each test runs a Redis server of its own.

use std::time::Duration;

use authd::config::{Config, HumanDuration, Limit};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, Redis, TestApp};

fn limited(cfg: &mut Config, redis: &Redis) {
    cfg.rate_limit.enabled = true;
    cfg.rate_limit.register.per_ip = Limit::new(1, 3600, 4);
    cfg.rate_limit.general.per_ip = Limit::new(10_000, 60, 10_000);
    redis.configure(cfg);
}

/// [`limited`], for a test of sharing, not of falling back: a busy machine answers late.
fn patient(cfg: &mut Config, redis: &Redis) {
    limited(cfg, redis);
    cfg.cache.timeout = HumanDuration::secs(5);
}

async fn register(app: &TestApp, n: usize) -> StatusCode {
    let email = format!("user{n}-{}@example.com", app.addr.port());
    app.post("/v1/auth/register", &json!({"email": email, "password": PASSWORD})).await.status()
}

#[tokio::test]
async fn two_nodes_share_one_budget_through_redis() {
    let Some(redis) = Redis::start().await else { return };
    let a = TestApp::spawn_with(|cfg| patient(cfg, &redis)).await;
    let b = TestApp::spawn_with(|cfg| patient(cfg, &redis)).await;
    // Both connect in the background.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fallbacks_before = a.svc().rate_limit_fallbacks() + b.svc().rate_limit_fallbacks();
    let mut allowed = 0;
    for n in 0..6 {
        for node in [&a, &b] {
            let s = register(node, n).await;
            assert!(s == StatusCode::CREATED || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
            allowed += usize::from(s == StatusCode::CREATED);
        }
    }
    assert_eq!(a.svc().rate_limit_fallbacks() + b.svc().rate_limit_fallbacks(), fallbacks_before, "both reached Redis");
    assert_eq!(allowed, 4, "the burst of 4 is shared, not 4 per node");
}

#[tokio::test]
async fn a_node_counts_alone_while_redis_is_down_and_shares_again_after() {
    let Some(mut redis) = Redis::start().await else { return };
    let app = TestApp::spawn_with(|cfg| {
        limited(cfg, &redis);
        cfg.metrics.token = Some(authd::config::Secret("scrape-token-0123456789".into()));
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.down().await;
    let before = app.svc().rate_limit_fallbacks();
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.push(register(&app, n).await);
    }
    // Never a failure: the node's own bucket limits it meanwhile.
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 4, "{statuses:?}");
    assert!(app.svc().rate_limit_fallbacks() > before, "the fallback is counted");
    // … and exported for a scraper, which alone may read it.
    let scrape = |token: &'static str| app.http.get(app.url("/metrics")).bearer_auth(token).send();
    assert_eq!(scrape("wrong-token-0123456789").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let text = scrape("scrape-token-0123456789").await.unwrap().text().await.unwrap();
    let line =
        text.lines().find(|l| l.starts_with("authd_rate_limit_fallbacks_total ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.split(' ').nth(1).unwrap().parse::<u64>().unwrap() > 0, "{line}");

    redis.up().await;
    let mut shared_again = false;
    for n in 100..200 {
        let before = app.svc().rate_limit_fallbacks();
        register(&app, n).await;
        if app.svc().rate_limit_fallbacks() == before {
            shared_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shared_again, "the node reconnects to Redis by itself");
}

/// Two nodes on one PostgreSQL database and one Redis.
async fn cluster(tweak: impl Fn(&mut Config)) -> Option<(TestApp, TestApp, Redis)> {
    let redis = Redis::start().await?;
    let db = crate::support::postgres_db().await?;
    let node = |cfg: &mut Config| {
        crate::support::use_postgres(cfg, &db);
        redis.configure(cfg);
        cfg.cache.timeout = HumanDuration::secs(5);
        tweak(cfg);
    };
    let a = TestApp::spawn_with(node).await;
    let b = TestApp::spawn_with(node).await;
    Some((a, b, redis))
}

#[tokio::test]
async fn failed_logins_on_two_nodes_count_against_one_budget() {
    let Some((a, b, _redis)) = cluster(|cfg| {
        cfg.brute_force.free_failures = 3;
        cfg.brute_force.challenge_after = 100;
    })
    .await
    else {
        return;
    };
    a.register("vera@example.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let wrong = json!({"login": "vera@example.com", "password": "not her password"});
    let mut statuses = Vec::new();
    for node in [&a, &b, &a, &b] {
        statuses.push(node.post("/v1/auth/login", &wrong).await.status());
    }
    // Three free failures in all, then the account is slowed down on every node.
    assert_eq!(
        statuses,
        [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS],
        "the budget is shared"
    );
    let r = a.post("/v1/auth/login", &json!({"login": "vera@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "slowed down on the other node too");
}

#[tokio::test]
async fn a_challenge_from_one_node_is_solved_on_another_and_spent_everywhere() {
    let Some((a, b, _redis)) = cluster(|cfg| {
        cfg.brute_force.free_failures = 10;
        cfg.brute_force.challenge_after = 1;
        cfg.challenge.difficulty = 8;
    })
    .await
    else {
        return;
    };
    a.register("wade@example.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let wrong = json!({"login": "wade@example.com", "password": "not his password"});
    assert_eq!(a.post("/v1/auth/login", &wrong).await.status(), StatusCode::UNAUTHORIZED);
    // One failure anywhere, and B wants a challenge too.
    let right = json!({"login": "wade@example.com", "password": PASSWORD});
    crate::support::assert_problem(
        b.post("/v1/auth/login", &right).await,
        StatusCode::UNAUTHORIZED,
        "challenge_required",
    )
    .await;
    let c: serde_json::Value = a.post("/v1/auth/challenge", &json!({})).await.json().await.unwrap();
    let challenge = c["challenge"].as_str().unwrap();
    let nonce = authd::security::pow::solve(challenge).unwrap();
    let solved = json!({"login": "wade@example.com", "password": PASSWORD, "challenge": challenge, "nonce": nonce});
    assert_eq!(b.post("/v1/auth/login", &solved).await.status(), StatusCode::OK, "B checks what A issued");
    // Spent: not again, on either node.
    assert_eq!(a.post("/v1/auth/login", &wrong).await.status(), StatusCode::UNAUTHORIZED);
    let again = a.post("/v1/auth/login", &solved).await;
    crate::support::assert_problem(again, StatusCode::UNAUTHORIZED, "challenge_failed").await;
}

#[tokio::test]
async fn metrics_are_off_without_a_token_and_parse_with_an_independent_parser() {
    let off = TestApp::spawn().await;
    let r = off.http.get(off.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let app =
        TestApp::spawn_with(|c| c.metrics.token = Some(authd::config::Secret("scrape-token-0123456789".into()))).await;
    // No token, and a wrong one, each said as it is.
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let said: serde_json::Value = r.json().await.unwrap();
    assert!(said["detail"].as_str().unwrap().starts_with("no token was sent"), "{said}");
    let r = app.http.get(app.url("/metrics")).bearer_auth("scrape-token-wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let said: serde_json::Value = r.json().await.unwrap();
    assert!(!said["detail"].as_str().unwrap().contains("compact JWS"), "{said}");
    let t = app.signed_in("mona@example.com").await;
    app.get_auth("/v1/me", &t.access).await;
    app.get_auth("/v1/me", &t.access).await;
    app.get_auth(&format!("/v1/me/sessions/{}", t.session), &t.access).await;
    app.get_auth("/v1/me", &format!("{}x", t.access)).await;
    let r = app
        .post("/v1/auth/login", &serde_json::json!({"login": "mona@example.com", "password": "not her password"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let text = app.get_auth("/metrics", "scrape-token-0123456789").await.text().await.unwrap();
    let scraped = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let find = |name: &str, label: (&str, &str)| {
        scraped
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .unwrap_or_else(|| panic!("{name}{label:?} in {text}"))
            .value
            .clone()
    };
    // OpenMetrics names a counter's family without `_total`; this parser then calls its samples
    // untyped. Either way the number is what counts.
    let number = |v: prometheus_parse::Value| match v {
        prometheus_parse::Value::Counter(n)
        | prometheus_parse::Value::Untyped(n)
        | prometheus_parse::Value::Gauge(n) => n,
        other => panic!("not a number: {other:?}"),
    };
    assert!(number(find("authd_http_requests_total", ("route", "/v1/me"))) >= 1.0);
    // Route templates, never concrete paths: a label per route, not per session.
    find("authd_http_requests_total", ("route", "/v1/me/sessions/:id"));
    assert!(!text.contains(&t.session));
    assert!(number(find("authd_logins_total", ("outcome", "success"))) >= 1.0);
    assert!(number(find("authd_logins_total", ("outcome", "invalid_credentials"))) >= 1.0);
    assert!(matches!(
        find("authd_http_request_duration_seconds", ("route", "/v1/me")),
        prometheus_parse::Value::Histogram(_)
    ));
    assert_eq!(number(find("authd_outbox_pending", ("kind", "email"))), 0.0);
    let unlabelled = |name: &str| {
        scraped.samples.iter().find(|s| s.metric == name).unwrap_or_else(|| panic!("{name} in {text}")).value.clone()
    };
    // Tokens authd signed are answered from the cache from their first use; the forged one was
    // the one miss.
    assert_eq!(number(unlabelled("authd_verified_token_cache_hits_total")), 2.0, "{text}");
    assert_eq!(number(unlabelled("authd_verified_token_cache_misses_total")), 1.0);
    // Registration and logins ran argon2: the threads hold its memory and timed their queue.
    assert!(number(unlabelled("authd_argon2_memory_bytes")) >= 64.0 * 1024.0, "the tests hash with 64 KiB");
    assert_eq!(number(unlabelled("authd_argon2_queue_depth")), 0.0);
    let histogram_count = |name: &str| match unlabelled(name) {
        prometheus_parse::Value::Histogram(buckets) => buckets.last().map(|b| b.count).unwrap_or_default(),
        other => panic!("{name} is not a histogram: {other:?}"),
    };
    assert!(histogram_count("authd_argon2_queue_wait_seconds") >= 2.0);
    assert!(histogram_count("authd_store_commit_batch_size") >= 1.0);
}
