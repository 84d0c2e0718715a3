//! A real OpenID Provider (node-oidc-provider, from npm in `tests/oidc`) as authd's upstream, and
//! the application's side of a login: start, follow the browser, exchange.

use std::process::Stdio;

use authd::config::{Config, HumanDuration, ProviderConfig, ProviderKind};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use super::TestApp;

/// node-oidc-provider on 127.0.0.1, its client being authd on `authd_port`.
pub struct RealOp {
    _child: tokio::process::Child,
    pub issuer: String,
}

impl RealOp {
    /// `None` where the provider is not installed (`npm ci --prefix tests/oidc`).
    pub async fn start(authd_port: u16, provider: &str, client_id: &str, client_secret: &str) -> Option<Self> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        if !dir.join("node_modules/oidc-provider").is_dir() {
            return super::unavailable("OpenID Connect", "install the test provider: npm ci --prefix tests/oidc");
        }
        let port = super::free_port();
        let redirect = format!("http://127.0.0.1:{authd_port}/v1/auth/oauth/{provider}/callback");
        let mut child = tokio::process::Command::new("node")
            .current_dir(&dir)
            .args(["provider.mjs", &port.to_string(), client_id, client_secret, &redirect])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "ready" {
                break;
            }
        }
        // Keep reading: a closed pipe would end the provider at its next notice.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Self { _child: child, issuer: format!("http://127.0.0.1:{port}") })
    }

    /// The account the provider signs in as next.
    pub async fn next(&self, account: Value) {
        let r = reqwest::Client::new().post(format!("{}/test/next", self.issuer)).json(&account).send().await.unwrap();
        assert!(r.status().is_success());
    }
}

// ---- The application's side of a login, as the stories play it ----

/// Where the application takes logins back.
pub const APP: &str = "http://app.test/auth/done";
pub const CLIENT_ID: &str = "authd-test";
pub const CLIENT_SECRET: &str = "authd-test-secret";
/// The application's PKCE verifier in these stories, and its S256 challenge (RFC 7636,
/// appendix B).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A provider of `kind` with the test client's credentials.
pub fn provider(kind: ProviderKind) -> ProviderConfig {
    serde_json::from_value(json!({"kind": kind, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})).unwrap()
}

/// The real provider, as configured in authd.
pub fn op_config(op: &RealOp) -> ProviderConfig {
    let mut p = provider(ProviderKind::Oidc);
    p.issuer = Some(op.issuer.clone());
    p.display_name = Some("Test OP".into());
    p
}

/// authd on a port chosen up front (the provider must know its callback), with `providers`.
pub async fn authd_with(port: u16, providers: Vec<(&str, ProviderConfig)>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let providers: Vec<(String, ProviderConfig)> = providers.into_iter().map(|(n, p)| (n.to_owned(), p)).collect();
    TestApp::spawn_with(move |c| {
        c.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        c.oauth.allowed_redirects = vec![APP.into()];
        // The spawned provider answers late on a busy machine.
        c.oauth.timeout = HumanDuration::secs(10);
        c.oauth.providers = providers.into_iter().collect();
        tweak(c);
    })
    .await
}

/// A browser: keeps cookies, follows nothing by itself.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Follows redirects from `url` until one leads to the application; returns that location.
pub async fn until_app(b: &reqwest::Client, url: &str) -> String {
    let mut next = url.to_owned();
    for _ in 0..15 {
        let r = b.get(&next).send().await.unwrap();
        let status = r.status();
        let Some(loc) = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned()) else {
            panic!("{next} answered {status} without a redirect: {}", r.text().await.unwrap());
        };
        let loc = url::Url::parse(&next).unwrap().join(&loc).unwrap().to_string();
        if loc.starts_with(APP) {
            return loc;
        }
        next = loc;
    }
    panic!("too many redirects from {url}");
}

pub fn param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The start of a login at `provider` that returns to `redirect`, with `extra` parameters.
pub fn start_url_with(app: &TestApp, provider: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&app.url(&format!("/v1/auth/oauth/{provider}/start"))).unwrap();
    u.query_pairs_mut().append_pair("redirect_uri", redirect).extend_pairs(extra);
    u.into()
}

/// The start of a login, bound to the application by [`CHALLENGE`].
pub fn start_url(app: &TestApp, provider: &str, redirect: &str) -> String {
    start_url_with(app, provider, redirect, &[("code_challenge", CHALLENGE), ("code_challenge_method", "S256")])
}

/// A whole login in a fresh browser: the application's return location.
pub async fn login_at(app: &TestApp, provider: &str) -> String {
    until_app(&browser(), &start_url(app, provider, APP)).await
}

/// The application trades the code `location` brought back, with `verifier` (if any).
pub async fn exchange_with(app: &TestApp, location: &str, verifier: Option<&str>) -> reqwest::Response {
    let code = param(location, "code").unwrap_or_else(|| panic!("no code in {location}"));
    let mut body = json!({"code": code});
    if let Some(v) = verifier {
        body["code_verifier"] = json!(v);
    }
    app.post("/v1/auth/oauth/exchange", &body).await
}

/// The application trades the code `location` brought back, with its verifier.
pub async fn exchange(app: &TestApp, location: &str) -> reqwest::Response {
    exchange_with(app, location, Some(VERIFIER)).await
}

pub async fn users(app: &TestApp) -> usize {
    app.svc().accounts.list_users().await.unwrap().len()
}

/// The reasons of the refused external logins audited so far.
pub async fn failures(app: &TestApp) -> Vec<String> {
    app.svc().flush().await;
    let filter = authd::service::audit::AuditFilter { event: Some("user.oauth_failed".into()), ..Default::default() };
    app.svc()
        .audit
        .events(&authd::service::Principal::Operator, filter, None, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.details["reason"].as_str().unwrap().to_owned())
        .collect()
}

/// Registers `email` with the test password and confirms it with the code mailed to `sink`.
pub async fn register_confirmed(app: &TestApp, sink: &super::MailSink, email: &str) -> Value {
    let user = app.register(email).await;
    let code = sink.first_to(email).await.code();
    let r = app.post("/v1/auth/verify", &json!({"email": email, "code": code})).await;
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT, "{email} confirmed");
    user
}
