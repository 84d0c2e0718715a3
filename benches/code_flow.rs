//! The OpenID Connect code flow, side by side with node-oidc-provider (OpenID certified, the
//! reference): an authorization request with a live browser session → code → token → UserInfo.
//! Each server runs in its own process; its CPU per flow comes from `/proc`.
//!
//! `cargo bench --bench code_flow`. Needs `node` and `npm ci --prefix tests/oidc`.
//! Environment: BENCH_SECS per server (default 10), BENCH_CONCURRENCY flows at once (default 4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const REDIRECT: &str = "https://rp.example/callback";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SECRET: &str = "bench-client-secret-that-is-long-enough";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = std::process::Command::new("getconf").arg("CLK_TCK").output().ok();
    let hz = hz.and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(100.0);
    ticks / hz
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One provider under test: where its endpoints are, and how a client authenticates.
struct Op {
    name: &'static str,
    pid: u32,
    authorize: String,
    token: String,
    userinfo: String,
    client_id: String,
    secret: String,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

fn location(r: &reqwest::Response) -> Option<String> {
    r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn authorize_url(op: &Op) -> String {
    let mut u = url::Url::parse(&op.authorize).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &op.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid email")
        .append_pair("state", "bench-state")
        .append_pair("nonce", "bench-nonce")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    u.into()
}

/// One flow with the browser session `b` holds: the code, the tokens, the claims.
async fn flow(op: &Op, b: &reqwest::Client, api: &reqwest::Client) {
    let r = b.get(authorize_url(op)).send().await.unwrap();
    let to = location(&r).unwrap_or_else(|| panic!("{}: no redirect ({})", op.name, r.status()));
    let code = param(&to, "code").unwrap_or_else(|| panic!("{}: no code in {to}", op.name));
    let t: Value = api
        .post(&op.token)
        .basic_auth(&op.client_id, Some(&op.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = t["access_token"].as_str().unwrap_or_else(|| panic!("{}: {t}", op.name));
    assert!(t["id_token"].is_string(), "{}: {t}", op.name);
    let info: Value = api.get(&op.userinfo).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert!(info["sub"].is_string(), "{}: {info}", op.name);
}

/// Flows for `secs`, `concurrency` at once: flows per second, and the server's CPU per flow.
async fn measure(op: &Op, b: &reqwest::Client, secs: u64, concurrency: usize) -> (f64, f64) {
    for _ in 0..20 {
        flow(op, b, b).await;
    }
    let done = Arc::new(AtomicU64::new(0));
    let before = cpu_secs(op.pid);
    let t = Instant::now();
    let deadline = t + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (b, done) = (b.clone(), Arc::clone(&done));
        // A client of its own for the back channel, as the application's server would be.
        let api = reqwest::Client::new();
        let op = Op {
            name: op.name,
            pid: op.pid,
            authorize: op.authorize.clone(),
            token: op.token.clone(),
            userinfo: op.userinfo.clone(),
            client_id: op.client_id.clone(),
            secret: op.secret.clone(),
        };
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                flow(&op, &b, &api).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = t.elapsed().as_secs_f64();
    let flows = done.load(Ordering::Relaxed) as f64;
    (flows / elapsed, (cpu_secs(op.pid) - before) * 1e6 / flows)
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut p = std::fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o700);
    std::fs::set_permissions(dir.path(), p).unwrap();
    dir
}

fn authd(dir: &Path, addr: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_authd"));
    c.current_dir(dir)
        .env_remove("AUTHD_CONFIG")
        .env("AUTHD_STORAGE__PATH", dir.join("authd.redb"))
        .env("AUTHD_SERVER__BIND", addr)
        .env("AUTHD_RATE_LIMIT__ENABLED", "false")
        .env("AUTHD_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    c
}

async fn wait_until_up(url: &str) {
    let t = Instant::now();
    while reqwest::get(url).await.is_err() {
        assert!(t.elapsed() < Duration::from_secs(30), "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// authd with a user, a trusted client whose ID tokens use `alg`, and a browser signed in
/// through the hosted login.
async fn start_authd(dir: &Path, alg: &str) -> (Killed, Op, reqwest::Client) {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = authd(dir, &addr)
        .args(["client", "add", "Bench", "--redirect-uri", REDIRECT, "--trusted", "--id-token-alg", alg, "--json"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let client: Value = serde_json::from_slice(&out.stdout).unwrap();
    let child = authd(dir, &addr).arg("serve").stdout(Stdio::null()).spawn().unwrap();
    let base = format!("http://{addr}");
    wait_until_up(&format!("{base}/healthz")).await;
    let op = Op {
        name: "authd",
        pid: child.id(),
        authorize: format!("{base}/oauth2/authorize"),
        token: format!("{base}/v1/token"),
        userinfo: format!("{base}/oauth2/userinfo"),
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        secret: client["client_secret"].as_str().unwrap().to_owned(),
    };
    let b = http();
    let r = b
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": "bench@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Sign in once through the hosted form: the browser session every flow then uses.
    let r = b.get(authorize_url(&op)).send().await.unwrap();
    let login = format!("{base}{}", location(&r).unwrap());
    let html = b.get(login).send().await.unwrap().text().await.unwrap();
    let field = |name: &str| {
        let re = regex::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
        re.captures(&html).map(|c| c[1].replace("&#x2f;", "/").replace("&amp;", "&")).unwrap_or_default()
    };
    let form = [
        ("csrf", field("csrf")),
        ("request", field("request")),
        ("login", "bench@example.com".into()),
        ("password", PASSWORD.into()),
    ];
    let r = b.post(format!("{base}/ui/login")).form(&form).send().await.unwrap();
    assert!(location(&r).is_some_and(|l| l.starts_with(REDIRECT)), "{}", r.status());
    (Killed(child), op, b)
}

/// node-oidc-provider from tests/oidc, its client's ID tokens signed with `alg`, signed in once
/// (its interactions finish by themselves).
async fn start_reference(alg: &str) -> Option<(Killed, Op, reqwest::Client)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    if !dir.join("node_modules/oidc-provider").is_dir() {
        eprintln!("node-oidc-provider is not installed: npm ci --prefix tests/oidc");
        return None;
    }
    let port = free_port();
    let child = Command::new("node")
        .current_dir(&dir)
        .args(["provider.mjs", &port.to_string(), "bench", SECRET, REDIRECT, alg])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/.well-known/openid-configuration")).await;
    let api = reqwest::Client::new();
    let next = json!({"sub": "bench", "email": "bench@example.com", "email_verified": true});
    assert!(api.post(format!("{base}/test/next")).json(&next).send().await.unwrap().status().is_success());
    let op = Op {
        name: "node-oidc-provider",
        pid: child.id(),
        authorize: format!("{base}/auth"),
        token: format!("{base}/token"),
        userinfo: format!("{base}/me"),
        client_id: "bench".into(),
        secret: SECRET.into(),
    };
    let b = http();
    // The first request goes through its login and consent interactions.
    let mut url = authorize_url(&op);
    for _ in 0..10 {
        let r = b.get(&url).send().await.unwrap();
        let to = location(&r).unwrap_or_else(|| panic!("reference: {}", r.status()));
        if to.starts_with(REDIRECT) {
            break;
        }
        url = if to.starts_with('/') { format!("{base}{to}") } else { to };
    }
    Some((Killed(child), op, b))
}

/// What one RSA-2048 signature costs here, from `openssl speed` (0 when it cannot run).
fn rsa_sign_us() -> f64 {
    let out = Command::new("openssl").args(["speed", "-seconds", "1", "rsa2048"]).stderr(Stdio::null()).output();
    let text = out.ok().and_then(|o| String::from_utf8(o.stdout).ok()).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("rsa 2048")).unwrap_or_default();
    line.split_whitespace().nth(3).and_then(|s| s.trim_end_matches('s').parse::<f64>().ok()).unwrap_or(0.0) * 1e6
}

fn main() {
    let secs = env_num("BENCH_SECS", 10);
    let concurrency = env_num("BENCH_CONCURRENCY", 4) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        println!("The code flow: authorization with a live browser session → code → token → UserInfo,");
        println!("{concurrency} flows at once, {secs} s each; server CPU from /proc.");
        println!();
        println!("| provider | flows/s | server CPU per flow |");
        println!("|---|---:|---:|");
        // Each algorithm on both sides, one after the other, so that drift between runs hits
        // both alike.
        let mut ratios = Vec::new();
        for alg in ["RS256", "EdDSA"] {
            let dir = private_dir();
            let (server, op, b) = start_authd(dir.path(), alg).await;
            let (rate, cpu) = measure(&op, &b, secs, concurrency).await;
            println!("| authd (this build), {alg} ID tokens | {rate:.0} | {cpu:.0} µs |");
            drop(server);
            let Some((reference, op, b)) = start_reference(alg).await else { return };
            let (ref_rate, ref_cpu) = measure(&op, &b, secs, concurrency).await;
            println!("| node-oidc-provider, {alg} ID tokens | {ref_rate:.0} | {ref_cpu:.0} µs |");
            drop(reference);
            ratios.push((alg, cpu / ref_cpu));
        }
        println!();
        for (alg, ratio) in ratios {
            println!("- authd's CPU per flow ÷ the reference's, {alg} ID tokens on both: {ratio:.3}");
        }
        println!(
            "- one RSA-2048 signature (every RS256 ID token): {:.0} µs on this machine (openssl speed)",
            rsa_sign_us()
        );
    });
}
