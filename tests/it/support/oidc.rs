//! A real OpenID Provider (node-oidc-provider, from npm in `tests/oidc`) as authd's upstream.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

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
