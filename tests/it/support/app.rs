//! authd in this process, on 127.0.0.1:0 with a fresh data directory, and the client every story
//! uses: requests, register, login, a signed-in user, an admin, problem+json checks.

use std::{net::SocketAddr, sync::Arc};

use authd::{
    config::{Argon2Config, Config, HumanDuration, StorageBackend},
    server::Application,
    service::AuthService,
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

use super::postgres::{postgres_db, use_postgres};

pub const PASSWORD: &str = "correct horse battery staple";

/// argon2 at its cheapest, so the suite stays fast; `story::default_argon2_parameters_end_to_end`
/// runs the real defaults.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.storage.path = dir.join("authd.redb");
    cfg.tokens.issuer = "http://authd.test".into();
    cfg.passwords.argon2 = Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 };
    cfg.passwords.hash_workers = 2;
    cfg.server.shutdown_grace = HumanDuration::secs(5);
    // Limits get tests of their own; the rest of the suite logs in freely.
    cfg.rate_limit.enabled = false;
    // Webhook receivers in tests listen on 127.0.0.1.
    cfg.webhook_delivery.allow_private_targets = true;
    cfg
}

/// A fresh data directory that only its owner may enter, as authd demands.
pub fn private_dir() -> TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin console's own listener, when `admin.console_bind` is set.
    pub console_addr: Option<SocketAddr>,
    pub http: reqwest::Client,
    pub dir: TempDir,
    pub cfg: Config,
    svc: Option<Arc<AuthService>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A server on a fresh PostgreSQL database; `None` when no test PostgreSQL is configured.
    pub async fn spawn_on_postgres(tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let url = postgres_db().await?;
        Some(
            Self::spawn_with(|cfg| {
                use_postgres(cfg, &url);
                tweak(cfg);
            })
            .await,
        )
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = private_dir();
        let mut cfg = test_config(dir.path());
        tweak(&mut cfg);
        Self::start(dir, cfg).await
    }

    /// Starts a server on an existing data directory (e.g. one the CLI prepared).
    pub async fn start_in(dir: TempDir) -> Self {
        let cfg = test_config(dir.path());
        Self::start(dir, cfg).await
    }

    async fn start(dir: TempDir, cfg: Config) -> Self {
        // After a restart, connection tasks of the previous server may still be winding down on
        // a loaded machine and hold the database for a moment.
        let mut tries = 0;
        let app = loop {
            match Application::build(cfg.clone()).await {
                Ok(app) => break app,
                Err(e) if tries < 100 && e.to_string().contains("already in use") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("server starts: {e:#}"),
            }
        };
        let addr = app.local_addr();
        let console_addr = app.console_addr();
        let svc = app.service();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            console_addr,
            http: reqwest::Client::new(),
            dir,
            cfg,
            svc: Some(svc),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server (closing the database) and starts it again on the same data.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// Restarts with a changed configuration.
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut Config)) -> Self {
        self.shutdown().await;
        let dir = std::mem::replace(&mut self.dir, private_dir());
        let mut cfg = self.cfg.clone();
        tweak(&mut cfg);
        drop(self);
        Self::start(dir, cfg).await
    }

    pub async fn shutdown(&mut self) {
        // Our own handle to the service must go too, or the database stays open.
        self.svc = None;
        self.http = reqwest::Client::new();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        // On a loaded machine, connection tasks of the stopped server can hold the database a
        // moment longer; wait until it can be opened again.
        for _ in 0..100 {
            if self.cfg.storage.backend != StorageBackend::Redb {
                break;
            }
            match authd::store::Store::open_redb(&self.cfg.storage.path) {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// The running server's service, for white-box helpers (signing crafted tokens).
    pub fn svc(&self) -> &AuthService {
        self.svc.as_ref().expect("server running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn post_auth(&self, path: &str, token: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.unwrap()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn register(&self, email: &str) -> Value {
        let r = self.post("/v1/auth/register", &json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(r.status(), StatusCode::CREATED, "register {email}");
        r.json().await.unwrap()
    }

    /// Logs in and returns the token response.
    pub async fn login(&self, login: &str, password: &str) -> Value {
        let r =
            self.post("/v1/auth/login", &json!({"login": login, "password": password, "device_name": "test"})).await;
        assert_eq!(r.status(), StatusCode::OK, "login {login}");
        r.json().await.unwrap()
    }

    /// Registers and logs in a fresh user.
    pub async fn signed_in(&self, email: &str) -> Tokens {
        self.register(email).await;
        Tokens::from(&self.login(email, PASSWORD).await)
    }

    /// An admin, created through the service as the CLI would.
    pub async fn admin(&self, email: &str) -> Tokens {
        self.user_with_roles(email, &["admin"]).await.1
    }

    /// A user holding `roles`, created through the service as the CLI would, and signed in: the
    /// user's id and tokens.
    pub async fn user_with_roles(&self, email: &str, roles: &[&str]) -> (String, Tokens) {
        let user = self
            .svc()
            .accounts
            .create_user(
                &authd::service::Principal::Operator,
                authd::service::NewAccount {
                    email: Some(email.into()),
                    password: Some(PASSWORD.into()),
                    roles: roles.iter().map(|r| (*r).into()).collect(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (user.id.to_string(), Tokens::from(&self.login(email, PASSWORD).await))
    }

    pub async fn status_of_me(&self, access: &str) -> StatusCode {
        self.get_auth("/v1/me", access).await.status()
    }

    pub async fn refresh(&self, refresh: &str) -> Response {
        self.post("/v1/auth/refresh", &json!({"refresh_token": refresh})).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session: String,
}

impl From<&Value> for Tokens {
    fn from(v: &Value) -> Self {
        Self {
            access: v["access_token"].as_str().unwrap().to_owned(),
            refresh: v["refresh_token"].as_str().unwrap().to_owned(),
            session: v["session_id"].as_str().unwrap().to_owned(),
        }
    }
}

/// The claims of a JWT, read without checking it.
pub fn claims_of(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The header of a JWT (`alg`, `kid`, `typ`).
pub fn header_of(token: &str) -> Value {
    jwt_part(token, 0)
}

fn jwt_part(token: &str, n: usize) -> Value {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let part = token.split('.').nth(n).unwrap_or_else(|| panic!("not a JWT: {token}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A client whose connections come from `ip` (any 127.x address works on loopback).
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
}

/// An authenticated request with an optional JSON body.
pub async fn call(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// Asserts a problem+json answer with the given status and code; returns the body.
pub async fn assert_problem(r: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status, "status");
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(ct.starts_with("application/problem+json"), "content type {ct}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(), "{body}");
    body
}
