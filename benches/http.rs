//! Throughput and latency of the hot paths over real HTTP on loopback.
//!
//! `cargo bench --bench http` (release build). The server runs in-process on its own runtime;
//! the load generator shares the machine, so the figures are a floor, not a ceiling.
//! Environment: BENCH_SECS (default 5) per scenario, BENCH_CONCURRENCY (default 32), and
//! BENCH_POSTGRES_URL (a server to create databases on) to run the hot paths on PostgreSQL too,
//! and on two nodes sharing one database; with BENCH_REDIS_URL as well, the hot paths run with
//! rate limits on (never triggering), once with this node's memory and once with Redis as the
//! shared limiter, side by side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use authd::{config::Config, server::Application};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Report {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    /// Prints the line; the rate and the p99.
    fn print(mut self) -> (f64, Duration) {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        println!(
            "{:<28} {:>9.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms   ({} requests, {} errors)",
            self.name,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0,
            self.requests,
            self.errors
        );
        (self.requests as f64 / self.elapsed.as_secs_f64(), pct(0.99))
    }
}

/// Runs `concurrency` workers for `secs`; each worker has its own state made by `setup`.
async fn load<S, F, Fut, SF, SFut>(name: &'static str, concurrency: usize, secs: u64, setup: SF, step: F) -> Report
where
    S: Send + 'static,
    SF: Fn(usize) -> SFut,
    SFut: std::future::Future<Output = S>,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (S, bool)> + Send,
{
    let step = Arc::new(step);
    let mut states = Vec::new();
    for i in 0..concurrency {
        states.push(setup(i).await);
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for state in states {
        let step = Arc::clone(&step);
        tasks.push(tokio::spawn(async move {
            let mut state = state;
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (s, ok) = step(state).await;
                state = s;
                lat.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    Report { name, requests: latencies.len(), errors, elapsed: start.elapsed(), latencies }
}

async fn login(http: &reqwest::Client, addr: SocketAddr, email: &str) -> Value {
    http.post(format!("http://{addr}/v1/auth/login"))
        .json(&json!({"login": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

struct Running {
    addr: SocketAddr,
    svc: Option<Arc<authd::service::AuthService>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

fn start(rt: &tokio::runtime::Runtime, tweak: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.storage.path = dir.path().join("data").join("authd.redb");
    cfg.passwords.hash_queue = 4096;
    cfg.forward_auth.rules = vec![authd::config::ForwardRule {
        host: "app.test".into(),
        paths: Vec::new(),
        methods: Vec::new(),
        scheme: Some("http".into()),
        policy: authd::config::Policy::SignedIn,
        roles: Vec::new(),
        permissions: Vec::new(),
        networks: Vec::new(),
    }];
    tweak(&mut cfg);
    let app = rt.block_on(Application::build(cfg)).unwrap();
    let addr = app.local_addr();
    let svc = Some(app.service());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    Running { addr, svc, stop, task, _dir: dir }
}

fn stop(rt: &tokio::runtime::Runtime, mut r: Running) {
    r.svc = None;
    let _ = r.stop.send(());
    rt.block_on(r.task).unwrap().unwrap();
}

async fn register_users(http: &reqwest::Client, addr: SocketAddr, n: usize) {
    for i in 0..n {
        let r = http
            .post(format!("http://{addr}/v1/auth/register"))
            .json(&json!({"email": format!("bench{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

/// The hosted login's session cookie (`name=value`), as a browser gets it.
async fn session_cookie(addr: SocketAddr, email: &str) -> String {
    let b = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let html = b.get(format!("http://{addr}/ui/login")).send().await.unwrap().text().await.unwrap();
    let csrf = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap().captures(&html).unwrap()[1].to_owned();
    let form = [("csrf", csrf.as_str()), ("login", email), ("password", PASSWORD)];
    let r = b.post(format!("http://{addr}/ui/login")).form(&form).send().await.unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("authd_forward="));
    cookie.unwrap().split(';').next().unwrap().to_owned()
}

async fn me_load(http: &reqwest::Client, addr: SocketAddr, name: &'static str, concurrency: usize, secs: u64) {
    let token = login(http, addr, "bench0@example.com").await["access_token"].as_str().unwrap().to_owned();
    let h = http.clone();
    load(
        name,
        concurrency,
        secs,
        |_| async {},
        move |()| {
            let (h, token) = (h.clone(), token.clone());
            async move {
                let ok = h
                    .get(format!("http://{addr}/v1/me"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                ((), ok)
            }
        },
    )
    .await
    .print();
}

fn main() {
    let secs = env_num("BENCH_SECS", 5);
    let concurrency = env_num("BENCH_CONCURRENCY", 32) as usize;
    // The server gets a runtime of its own.
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let users = 16usize;

    // Rate limiting off: the raw paths, on each storage backend at hand.
    hot_paths(&server_rt, &client_rt, &http, secs, concurrency, users, "redb", |_| {});
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let url = client_rt.block_on(fresh_database(&admin));
        hot_paths(&server_rt, &client_rt, &http, secs, concurrency, users, "postgres", |c| on_postgres(c, &url));
        let url = client_rt.block_on(fresh_database(&admin));
        two_nodes(&server_rt, &client_rt, &http, secs, concurrency, users, &url);
        if let Ok(redis) = std::env::var("BENCH_REDIS_URL") {
            let url = client_rt.block_on(fresh_database(&admin));
            let label = "postgres, limits on in memory";
            hot_paths(&server_rt, &client_rt, &http, secs, concurrency, users, label, |c| {
                on_postgres(c, &url);
                limits_that_never_trigger(c);
            });
            let url = client_rt.block_on(fresh_database(&admin));
            let label = "postgres + redis, limits on in redis";
            hot_paths(&server_rt, &client_rt, &http, secs, concurrency, users, label, |c| {
                on_postgres(c, &url);
                limits_that_never_trigger(c);
                c.cache.backend = authd::config::CacheBackend::Redis;
                c.cache.url = Some(authd::config::Secret(redis.clone()));
            });
        }
    }

    // Rate limiting on (limits high enough never to trigger): the limiter's cost on the hot path,
    // then an honest login while another address floods wrong passwords.
    let on = start(&server_rt, |c| {
        c.rate_limit.general.per_ip = authd::config::Limit::new(1_000_000_000, 1, 1_000_000_000);
        // Room for the honest client's paced logins; the flood is stopped by the brute-force
        // throttle, not by these.
        c.rate_limit.login.per_ip = authd::config::Limit::new(600, 60, 100);
        c.rate_limit.login.per_account = authd::config::Limit::new(600, 60, 100);
    });
    let addr = on.addr;
    client_rt.block_on(async {
        register_users(&http, addr, 2).await;
        me_load(&http, addr, "GET /v1/me, limits on", concurrency, secs).await;

        let flood =
            reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
        let stop_at = Instant::now() + Duration::from_secs(secs);
        let mut flooders = Vec::new();
        for _ in 0..16 {
            let f = flood.clone();
            flooders.push(tokio::spawn(async move {
                let (mut evaluated, mut refused) = (0u32, 0u32);
                while Instant::now() < stop_at {
                    let r = f
                        .post(format!("http://{addr}/v1/auth/login"))
                        .json(&json!({"login": "bench1@example.com", "password": "not the password"}))
                        .send()
                        .await
                        .unwrap();
                    if r.status() == 401 { evaluated += 1 } else { refused += 1 }
                }
                (evaluated, refused)
            }));
        }
        // The honest user signs in four times a second while the flood runs.
        let started = Instant::now();
        let mut latencies = Vec::new();
        let mut errors = 0;
        while Instant::now() + Duration::from_millis(300) < stop_at {
            let t = Instant::now();
            let r = http
                .post(format!("http://{addr}/v1/auth/login"))
                .json(&json!({"login": "bench0@example.com", "password": PASSWORD}))
                .send()
                .await;
            latencies.push(t.elapsed());
            if !r.is_ok_and(|r| r.status() == 200) {
                errors += 1;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Report {
            name: "honest login while flooded",
            requests: latencies.len(),
            errors,
            elapsed: started.elapsed(),
            latencies,
        }
        .print();
        let (mut evaluated, mut refused) = (0, 0);
        for f in flooders {
            let (e, r) = f.await.unwrap();
            evaluated += e;
            refused += r;
        }
        println!(
            "{:<28} {evaluated} wrong passwords evaluated, {refused} refused without hashing (429)",
            "  flood (16 clients)"
        );
    });
    stop(&server_rt, on);
}

/// Health ceiling, token check, `/v1/me`, refresh and login, with rate limiting off.
#[allow(clippy::too_many_arguments)]
fn hot_paths(
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    secs: u64,
    concurrency: usize,
    users: usize,
    label: &str,
    backend: impl FnOnce(&mut Config),
) {
    let off = start(server_rt, |c| {
        c.rate_limit.enabled = false;
        backend(c);
    });
    let addr = off.addr;
    let svc = off.svc.clone().unwrap();
    client_rt.block_on(async {
        register_users(http, addr, users).await;
        println!(
            "authd HTTP benchmark: {secs}s per scenario, {concurrency} concurrent clients, loopback; storage: {label}"
        );

        let h = http.clone();
        let (health_rate, _) = load(
            "GET /healthz (ceiling)",
            concurrency,
            secs,
            |_| async {},
            move |()| {
                let h = h.clone();
                async move {
                    let ok = h.get(format!("http://{addr}/healthz")).send().await.is_ok_and(|r| r.status() == 200);
                    ((), ok)
                }
            },
        )
        .await
        .print();

        // What a proxy asks before every request of a protected application: the session from
        // memory, the rules, the identity headers.
        let cookie = session_cookie(addr, "bench0@example.com").await;
        let h = http.clone();
        let (rate, p99) = load(
            "GET /v1/authz/forward-auth",
            concurrency,
            secs,
            |_| async {},
            move |()| {
                let (h, cookie) = (h.clone(), cookie.clone());
                async move {
                    let r = h
                        .get(format!("http://{addr}/v1/authz/forward-auth"))
                        .header("X-Forwarded-Method", "GET")
                        .header("X-Forwarded-Proto", "http")
                        .header("X-Forwarded-Host", "app.test")
                        .header("X-Forwarded-Uri", "/notes/7")
                        .header("Cookie", &cookie)
                        .send()
                        .await;
                    ((), r.is_ok_and(|r| r.status() == 200 && r.headers().contains_key("remote-session")))
                }
            },
        )
        .await
        .print();
        println!(
            "{:<28} {:>9.2} of /healthz's rate (target ≥ 0.8), p99 {:.2} ms (target < 2 ms)",
            "  forward-auth",
            rate / health_rate,
            p99.as_secs_f64() * 1000.0
        );

        let token = login(http, addr, "bench0@example.com").await["access_token"].as_str().unwrap().to_owned();
        // The per-request check alone: signature, claims, in-memory revocations; no disk.
        let n = 100_000u32;
        let t = Instant::now();
        for _ in 0..n {
            assert!(svc.tokens.authenticate(std::hint::black_box(&token)).is_ok());
        }
        let per = t.elapsed() / n;
        println!(
            "{:<28} {:>9.0} checks/s per core ({:.1} µs each, in-process)",
            "token check",
            1.0 / per.as_secs_f64(),
            per.as_secs_f64() * 1e6
        );

        me_load(http, addr, "GET /v1/me", concurrency, secs).await;

        let (h, hs) = (http.clone(), http.clone());
        load(
            "POST /v1/auth/refresh",
            concurrency,
            secs,
            move |i| {
                let hs = hs.clone();
                async move {
                    let t = login(&hs, addr, &format!("bench{}@example.com", i % users)).await;
                    t["refresh_token"].as_str().unwrap().to_owned()
                }
            },
            move |rt: String| {
                let h = h.clone();
                async move { rotate(&h, addr, rt).await }
            },
        )
        .await
        .print();

        let h = http.clone();
        // One account per client: parallel attempts on one account are held to
        // `brute_force.free_failures` in flight by design.
        load(
            "POST /v1/auth/login (argon2)",
            8,
            secs,
            move |i| async move { format!("bench{}@example.com", i % users) },
            move |email: String| {
                let h = h.clone();
                async move {
                    let r = h
                        .post(format!("http://{addr}/v1/auth/login"))
                        .json(&json!({"login": email, "password": PASSWORD}))
                        .send()
                        .await;
                    let ok = r.is_ok_and(|r| r.status() == 200);
                    (email, ok)
                }
            },
        )
        .await
        .print();
    });
    drop(svc);
    stop(server_rt, off);
}

/// Rate limits and the brute-force throttle on, at levels the benchmark never reaches: what
/// the limiter costs per request.
fn limits_that_never_trigger(c: &mut Config) {
    let high = authd::config::Limit::new(1_000_000_000, 1, 1_000_000_000);
    c.rate_limit.enabled = true;
    for l in [
        &mut c.rate_limit.general,
        &mut c.rate_limit.login,
        &mut c.rate_limit.refresh,
        &mut c.rate_limit.register,
        &mut c.rate_limit.password,
    ] {
        l.per_ip = high;
        l.per_account = high;
    }
}

fn on_postgres(c: &mut Config, url: &str) {
    c.storage.backend = authd::config::StorageBackend::Postgres;
    c.storage.url = Some(authd::config::Secret(url.to_owned()));
    c.security.data_key = Some(authd::config::Secret("YmVuY2gtZGF0YS1rZXktYmVuY2gtZGF0YS1rZXktMzI=".to_owned()));
}

/// One refresh: the new refresh token and true, or the old one and false.
async fn rotate(h: &reqwest::Client, addr: SocketAddr, rt: String) -> (String, bool) {
    let r = h.post(format!("http://{addr}/v1/auth/refresh")).json(&json!({"refresh_token": rt})).send().await;
    match r {
        Ok(r) if r.status() == 200 => {
            let v: Value = r.json().await.unwrap();
            (v["refresh_token"].as_str().unwrap().to_owned(), true)
        }
        _ => (rt, false),
    }
}

/// An empty database on the PostgreSQL server `admin` names.
async fn fresh_database(admin: &str) -> String {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let name = format!("authd_bench_{}", uuid::Uuid::now_v7().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// Two nodes on one PostgreSQL database, each client sticking to one of them: `/v1/me` and
/// refresh, to set beside one node's figures.
#[allow(clippy::too_many_arguments)]
fn two_nodes(
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    secs: u64,
    concurrency: usize,
    users: usize,
    url: &str,
) {
    let node = |c: &mut Config| {
        c.rate_limit.enabled = false;
        on_postgres(c, url);
    };
    let a = start(server_rt, node);
    let b = start(server_rt, node);
    let addrs = [a.addr, b.addr];
    client_rt.block_on(async {
        register_users(http, addrs[0], users).await;
        println!("two nodes on one PostgreSQL database, clients split between them");
        let token = login(http, addrs[0], "bench0@example.com").await["access_token"].as_str().unwrap().to_owned();
        let h = http.clone();
        load(
            "GET /v1/me, two nodes",
            concurrency,
            secs,
            move |i| async move { addrs[i % 2] },
            move |addr: SocketAddr| {
                let (h, token) = (h.clone(), token.clone());
                async move {
                    let r = h.get(format!("http://{addr}/v1/me")).bearer_auth(&token).send().await;
                    (addr, r.is_ok_and(|r| r.status() == 200))
                }
            },
        )
        .await
        .print();
        let (h, hs) = (http.clone(), http.clone());
        load(
            "POST /v1/auth/refresh, two nodes",
            concurrency,
            secs,
            move |i| {
                let hs = hs.clone();
                async move {
                    let addr = addrs[i % 2];
                    let t = login(&hs, addr, &format!("bench{}@example.com", i % users)).await;
                    (addr, t["refresh_token"].as_str().unwrap().to_owned())
                }
            },
            move |(addr, rt): (SocketAddr, String)| {
                let h = h.clone();
                async move {
                    let (rt, ok) = rotate(&h, addr, rt).await;
                    ((addr, rt), ok)
                }
            },
        )
        .await
        .print();
    });
    stop(server_rt, a);
    stop(server_rt, b);
}
