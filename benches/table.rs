//! The figures that matter, in one table: a release `authd serve` in its own process, `wrk` as
//! the load generator, and the server's CPU per operation read from `/proc` (steadier than rates
//! on a shared machine).
//!
//! `cargo bench --bench table`. Needs `wrk` and `argon2` (Debian packages of those names).
//! Environment: BENCH_SECS per load scenario (default 5); BENCH_USERS and BENCH_EVENTS, the
//! size of the database the list queries run on (default 1,000,000 and 10,000,000; 0 skips);
//! BENCH_LISTS_ONLY=1, those lists (the admin API's and the console's pages) alone;
//! BENCH_AUTHD, another `authd` binary to measure instead of this build (an older release, to
//! compare side by side: `bench/compare.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use authd::{
    model::{AuditEvent, User},
    store::Store,
};
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn authd(dir: &Path) -> Command {
    let bin = std::env::var_os("BENCH_AUTHD").unwrap_or_else(|| env!("CARGO_BIN_EXE_authd").into());
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .env_remove("AUTHD_CONFIG")
        .env("AUTHD_STORAGE__PATH", dir.join("authd.redb"))
        .env("AUTHD_TOKENS__ISSUER", "http://authd.bench")
        .env("AUTHD_RATE_LIMIT__ENABLED", "false")
        .env("AUTHD_PASSWORDS__RELEASE_MEMORY_AFTER", "5s")
        .env("AUTHD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// `GET /healthz` over a plain socket: true on a 200.
fn healthy(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: bench\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// Starts the server; returns it and how long it took to answer `/healthz`.
fn start(dir: &Path) -> (Server, Duration) {
    let addr = format!("127.0.0.1:{}", free_port());
    let t = Instant::now();
    let child = authd(dir).args(["serve"]).env("AUTHD_SERVER__BIND", &addr).spawn().unwrap();
    let server = Server { child, addr };
    while !healthy(&server.addr) {
        assert!(t.elapsed() < Duration::from_secs(30), "the server did not start");
        std::thread::sleep(Duration::from_micros(500));
    }
    (server, t.elapsed())
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let mut p = std::fs::metadata(dir.path().join("data")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o700);
    std::fs::set_permissions(dir.path().join("data"), p).unwrap();
    dir
}

fn data(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f[11].parse().unwrap(), f[12].parse().unwrap());
    (utime + stime) / clock_ticks()
}

/// A line of `/proc/<pid>/status` in MB: `VmRSS` (all resident pages) or `RssAnon` (private
/// memory, what a host runs out of; the rest is the binary's shared, reclaimable file pages).
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS:")
}

/// What one wrk run measured.
#[derive(Default)]
struct Run {
    requests: f64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: f64,
    server_cpu_us: f64,
    wrk_cpu_us: f64,
    rss_mb: f64,
}

fn millis(v: &str) -> f64 {
    let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = n.parse().unwrap_or(0.0);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => n,
    }
}

/// Runs wrk (one thread, `conns` connections) against `path` with a Lua script; the server's
/// CPU and wrk's own are read around it.
fn wrk(server: &Server, path: &str, conns: usize, secs: u64, lua: &str) -> Run {
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), lua).unwrap();
    let before = cpu_secs(server.pid());
    // bash reports its waited-for child's CPU (wrk's) in its own /proc stat (cutime, cstime).
    let cmd = format!(
        "wrk --latency -t1 -c{conns} -d{secs}s -s {} {} ; read -r l < /proc/$$/stat; echo \"CHILDCPU $l\"",
        script.path().display(),
        server.url(path)
    );
    let out = Command::new("bash").args(["-c", &cmd]).output().expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let server_cpu = cpu_secs(server.pid()) - before;
    let mut run = Run { rss_mb: rss_mb(server.pid()), ..Run::default() };
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["50%", v] => run.p50_ms = millis(v),
            ["99%", v] => run.p99_ms = millis(v),
            ["Requests/sec:", v] => run.rate = v.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => run.requests = n.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", n] => run.failed += n.parse::<f64>().unwrap_or(0.0),
            ["Socket", "errors:", ..] => {
                run.failed += w.iter().filter_map(|x| x.trim_end_matches(',').parse::<f64>().ok()).sum::<f64>();
            }
            ["CHILDCPU", ..] => {
                let after = &line[line.rfind(')').unwrap() + 2..];
                let f: Vec<&str> = after.split_whitespace().collect();
                let (cu, cs): (f64, f64) = (f[13].parse().unwrap(), f[14].parse().unwrap());
                run.wrk_cpu_us = (cu + cs) / clock_ticks() * 1e6;
            }
            _ => {}
        }
    }
    if run.requests > 0.0 {
        run.server_cpu_us = server_cpu * 1e6 / run.requests;
        run.wrk_cpu_us /= run.requests;
    }
    run
}

fn row(name: &str, r: &Run) {
    println!(
        "| {name} | {:.0}/s | {:.2} ms | {:.2} ms | {:.0} µs | {:.0} µs | {:.0} MB | {:.0} |",
        r.rate, r.p50_ms, r.p99_ms, r.server_cpu_us, r.wrk_cpu_us, r.rss_mb, r.failed
    );
}

fn lua_get(token: Option<&str>) -> String {
    match token {
        Some(t) => format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n"),
        None => String::new(),
    }
}

/// Logins round-robin over `l0@example.com`… `l{n-1}@example.com`.
fn lua_logins(n: usize) -> String {
    format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local i = 0
request = function()
  i = (i + 1) % {n}
  return wrk.format(nil, nil, nil, '{{"login":"l' .. i .. '@example.com","password":"{PASSWORD}"}}')
end
"#
    )
}

/// Each connection rotates its own refresh-token chain: a response's new token goes back to the
/// pool the next request takes from.
fn lua_refresh_chains(tokens: &[String]) -> String {
    let list: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"local pool = {{ {} }}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local t = table.remove(pool) or "exhausted"
  return wrk.format(nil, nil, nil, '{{"refresh_token":"' .. t .. '"}}')
end
response = function(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then table.insert(pool, t) end
end
"#,
        list.join(", ")
    )
}

struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn new() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            // A fresh connection per call: the server closes idle ones while wrk runs.
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap(),
        }
    }

    fn post(&self, url: String, body: Value) -> (u16, Value) {
        self.rt.block_on(async {
            let r = self.http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
        })
    }

    /// `token`: an access token, or `cookie:<name=value>` for a hosted-login session.
    fn get(&self, url: String, token: &str) -> (u16, Duration) {
        self.rt.block_on(async {
            let t = Instant::now();
            let req = match token.strip_prefix("cookie:") {
                Some(cookie) => self.http.get(url).header("cookie", cookie),
                None => self.http.get(url).bearer_auth(token),
            };
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            (status, t.elapsed())
        })
    }

    /// Signs in on the hosted login; `cookie:<name=value>` of the session, for the console.
    fn console_session(&self, server: &Server, login: &str) -> String {
        self.rt.block_on(async {
            let b = reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let html = b.get(server.url("/ui/login")).send().await.unwrap().text().await.unwrap();
            let csrf =
                html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
            let form = [("csrf", csrf.as_str()), ("login", login), ("password", PASSWORD)];
            let r = b.post(server.url("/ui/login")).form(&form).send().await.unwrap();
            let set = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|c| c.starts_with("authd_session="));
            format!("cookie:{}", set.unwrap().split(';').next().unwrap())
        })
    }

    fn login(&self, server: &Server, login: &str) -> Value {
        let (status, body) = self.post(server.url("/v1/auth/login"), json!({"login": login, "password": PASSWORD}));
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Hashes per second of the reference argon2 implementation (the `argon2` command), two
/// processes at once on two cores, at OWASP's parameters.
fn reference_argon2_rate(per_process: usize) -> f64 {
    let one = format!(
        "for i in $(seq {per_process}); do printf '%s' '{PASSWORD}' | argon2 saltsaltsaltsalt -id -t 2 -k 19456 -p 1 -l 32 -r > /dev/null; done"
    );
    let t = Instant::now();
    let status = Command::new("bash")
        .args(["-c", &format!("({one}) & ({one}) & wait")])
        .status()
        .expect("argon2 runs (apt-get install argon2)");
    assert!(status.success());
    (2 * per_process) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let secs = env_num("BENCH_SECS", 5);
    let client = Client::new();
    let which = std::env::var("BENCH_AUTHD").unwrap_or_else(|_| "this build".into());
    println!("authd {} ({which}) on {}", env!("CARGO_PKG_VERSION"), machine());
    println!();
    // `BENCH_LISTS_ONLY=1`: the lists on a big database alone (no wrk, no argon2 needed).
    if std::env::var_os("BENCH_LISTS_ONLY").is_some() {
        big_lists(&client);
        return;
    }

    // Start: median of five fresh starts; memory right after.
    let mut starts = Vec::new();
    let mut idle_rss = Vec::new();
    let mut idle_anon = Vec::new();
    for _ in 0..5 {
        let dir = private_dir();
        let (server, took) = start(&data(&dir));
        starts.push(took);
        idle_rss.push(rss_mb(server.pid()));
        idle_anon.push(status_mb(server.pid(), "RssAnon:"));
    }
    starts.sort();
    idle_rss.sort_by(f64::total_cmp);
    idle_anon.sort_by(f64::total_cmp);

    let dir = private_dir();
    let (server, _) = start(&data(&dir));
    let (status, _) =
        client.post(server.url("/v1/auth/register"), json!({"email": "bench@example.com", "password": PASSWORD}));
    assert_eq!(status, 201);
    let access = client.login(&server, "bench@example.com")["access_token"].as_str().unwrap().to_owned();

    println!("| scenario | ops/s | p50 | p99 | server CPU/op | wrk CPU/op | server RSS | failed |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let health = wrk(&server, "/healthz", 32, secs, "");
    row("`GET /healthz`, 32 connections", &health);
    let me = wrk(&server, "/v1/me", 32, secs, &lua_get(Some(&access)));
    row("`GET /v1/me`, valid token, 32 connections", &me);

    // 64 chains, and a few spare tokens: wrk asks for one request before it starts, which then
    // never goes out.
    let sessions: Vec<String> = (0..72)
        .map(|_| client.login(&server, "bench@example.com")["refresh_token"].as_str().unwrap().to_owned())
        .collect();
    let refresh = wrk(&server, "/v1/auth/refresh", 64, secs, &lua_refresh_chains(&sessions));
    row("`POST /v1/auth/refresh`, 64 rotating chains", &refresh);

    // Many accounts: one account's concurrent attempts are throttled as if they failed.
    for n in 0..32 {
        let (status, _) = client
            .post(server.url("/v1/auth/register"), json!({"email": format!("l{n}@example.com"), "password": PASSWORD}));
        assert_eq!(status, 201);
    }
    let login = wrk(&server, "/v1/auth/login", 8, secs, &lua_logins(32));
    row("`POST /v1/auth/login`, argon2id 19 MiB t=2, 8 connections", &login);
    let storm_rss = rss_mb(server.pid());
    std::thread::sleep(Duration::from_secs(8));
    let after_rss = rss_mb(server.pid());
    let reference = reference_argon2_rate(10);
    println!();
    println!(
        "- `/v1/me` ÷ `/healthz`: {:.2} by rate, {:.2} by server CPU per request",
        me.rate / health.rate,
        health.server_cpu_us / me.server_cpu_us
    );
    println!(
        "- login ÷ reference argon2 (the `argon2` command, 2 processes): {:.1}/s ÷ {:.1}/s = {:.2}",
        login.rate,
        reference,
        login.rate / reference
    );
    println!(
        "- start to healthy: median {:.0} ms (of 5: {:.0}–{:.0} ms); RSS right after start: median {:.1} MB, of which anonymous {:.1} MB",
        starts[2].as_secs_f64() * 1000.0,
        starts[0].as_secs_f64() * 1000.0,
        starts[4].as_secs_f64() * 1000.0,
        idle_rss[2],
        idle_anon[2]
    );
    println!(
        "- RSS at the end of the login storm {storm_rss:.1} MB; 8 s later (argon2 memory released after 5 s idle) {after_rss:.1} MB"
    );
    drop(server);

    big_lists(&client);
}

/// The lists on a big database, unless `BENCH_USERS` or `BENCH_EVENTS` is 0.
fn big_lists(client: &Client) {
    let users = env_num("BENCH_USERS", 1_000_000) as usize;
    let events = env_num("BENCH_EVENTS", 10_000_000) as usize;
    if users > 0 && events > 0 {
        lists(client, users, events);
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cores} × {cpu}")
}

fn user(n: usize, password_hash: &str) -> User {
    let status = if n % 100 == 7 { "disabled" } else { "active" };
    let roles = if n % 50 == 3 { json!(["user", "billing"]) } else { json!(["user"]) };
    serde_json::from_value(json!({
        "id": Uuid::now_v7(), "email": format!("u{n:07}@example.com"), "roles": roles, "status": status,
        "password_hash": password_hash, "created_at": 1
    }))
    .unwrap()
}

const EVENT_NAMES: [&str; 6] =
    ["user.logged_in", "token.refreshed", "user.logged_out", "user.created", "session.revoked", "user.login_failed"];

/// Admin lists on a big database: `users` users, `events` audit events, seeded straight into the
/// file; then each query's p50/p99 over 200 sequential pages.
fn lists(client: &Client, users: usize, events: usize) {
    let dir = private_dir();
    let path = data(&dir).join("authd.redb");
    let seeded = Instant::now();
    let (subjects, few) = {
        let store = Store::open_redb(&path).unwrap();
        // One real hash, shared: these users are for listing, not for signing in.
        let hasher = authd::security::password::PasswordHasher::start(
            authd::config::Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 },
            1,
            4,
            Duration::from_secs(1),
        )
        .unwrap();
        let hash = client.rt.block_on(hasher.hash(PASSWORD)).unwrap();
        let mut ids = Vec::with_capacity(users);
        for chunk in (0..users).collect::<Vec<_>>().chunks(50_000) {
            let batch: Vec<User> = chunk.iter().map(|n| user(*n, &hash)).collect();
            ids.extend(batch.iter().map(|u| u.id));
            store.write(|tx| batch.iter().try_for_each(|u| tx.insert_user(u))).unwrap();
        }
        let few = ids[users / 2];
        let mut n = 0usize;
        while n < events {
            let end = (n + 100_000).min(events);
            let batch: Vec<AuditEvent> = (n..end)
                .map(|i| {
                    // The user in the middle has a handful of events, spread through the log.
                    let subject = if i % (events / 5).max(1) == 0 { few } else { ids[(i * 7919) % users] };
                    let id = Uuid::now_v7();
                    serde_json::from_value(json!({
                        "id": id, "time_ms": now_ms(), "event": EVENT_NAMES[i % EVENT_NAMES.len()],
                        "outcome": "success", "actor": format!("user:{subject}"), "subject": subject, "details": {}
                    }))
                    .unwrap()
                })
                .collect();
            store.write(|tx| batch.iter().try_for_each(|e| tx.insert_audit(e))).unwrap();
            n = end;
        }
        (ids, few)
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!();
    println!(
        "Lists on {users} users and {events} audit events (seeded in {:.0} s; file {:.1} GB):",
        seeded.elapsed().as_secs_f64(),
        size as f64 / 1e9
    );
    let out = authd(&data(&dir))
        .args(["user", "add", "boss@example.com", "--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(out.success());
    let (server, took) = start(&data(&dir));
    println!("(start to healthy on this file: {:.0} ms)", took.as_secs_f64() * 1000.0);
    let admin = client.login(&server, "boss@example.com")["access_token"].as_str().unwrap().to_owned();
    let few_email = format!("u{:07}@example.com", users / 2);
    let few_token = client.login(&server, &few_email)["access_token"].as_str().unwrap().to_owned();
    let mid = subjects[users / 2];
    let console = client.console_session(&server, "boss@example.com");
    let queries: Vec<(String, String, &str)> = vec![
        ("`GET /v1/me/events`, a user with 5 events".into(), "/v1/me/events".into(), &few_token),
        ("users, first page of 50".into(), "/v1/admin/users?limit=50".into(), &admin),
        ("users after a cursor half-way".into(), format!("/v1/admin/users?limit=50&cursor={mid}"), &admin),
        ("users, `status=disabled`".into(), "/v1/admin/users?limit=50&status=disabled".into(), &admin),
        ("users, `role=billing`".into(), "/v1/admin/users?limit=50&role=billing".into(), &admin),
        ("users, prefix `q=u05000`".into(), "/v1/admin/users?limit=50&q=u05000".into(), &admin),
        ("audit, newest 100".into(), "/v1/admin/audit?limit=100".into(), &admin),
        ("audit, `event=user.logged_out`".into(), "/v1/admin/audit?limit=100&event=user.logged_out".into(), &admin),
        ("audit, family `event=session`".into(), "/v1/admin/audit?limit=100&event=session".into(), &admin),
        ("audit, one user".into(), format!("/v1/admin/audit?limit=100&user={few}"), &admin),
        ("audit, `since` an hour ago".into(), "/v1/admin/audit?limit=100&since=1h".into(), &admin),
        // The console's pages on the same data, each a whole HTML page.
        ("console: users, first page".into(), "/ui/admin/users".into(), &console),
        ("console: users after a cursor half-way".into(), format!("/ui/admin/users?after={mid}"), &console),
        ("console: users, `status=disabled`".into(), "/ui/admin/users?status=disabled".into(), &console),
        ("console: users, `role=billing`".into(), "/ui/admin/users?role=billing".into(), &console),
        ("console: users, prefix `q=u05000`".into(), "/ui/admin/users?q=u05000".into(), &console),
        ("console: a user's page".into(), format!("/ui/admin/users/{few}"), &console),
        ("console: audit log".into(), "/ui/admin/audit".into(), &console),
        ("console: audit, `event=user.logged_out`".into(), "/ui/admin/audit?event=user.logged_out".into(), &console),
        ("console: overview".into(), "/ui/admin".into(), &console),
        ("console: keys".into(), "/ui/admin/keys".into(), &console),
    ];
    println!("| query | p50 | p99 | server CPU/page |");
    println!("|---|---:|---:|---:|");
    for (name, path, token) in queries {
        let before = cpu_secs(server.pid());
        let mut times = Vec::new();
        for _ in 0..200 {
            let (status, t) = client.get(server.url(&path), token);
            assert_eq!(status, 200, "{path}");
            times.push(t);
        }
        let cpu = (cpu_secs(server.pid()) - before) * 1e6 / 200.0;
        times.sort();
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {cpu:.0} µs |",
            times[100].as_secs_f64() * 1000.0,
            times[197].as_secs_f64() * 1000.0
        );
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
