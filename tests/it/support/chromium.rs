//! A headless Chromium driven over WebDriver (chromedriver), as a user would: open a page, type,
//! click, read what it shows.

use std::{process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver in a process group of its own: dropping it ends the group, Chromium included,
/// which chromedriver alone would leave running when a test fails.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = self.0.id().and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

pub struct Browser {
    _driver: Driver,
    _profile: tempfile::TempDir,
    http: reqwest::Client,
    base: String,
}

impl Browser {
    /// A headless Chromium session, or `None` (with a note) where chromedriver is not installed
    /// and CI does not demand it.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// The same, with more command-line flags for Chromium.
    pub async fn start_with(extra: &[String]) -> Option<Self> {
        let installed = std::path::Path::new("/usr/bin/chromedriver").exists();
        if !installed {
            return super::unavailable("Browser", "install chromedriver (apt-get install chromium chromium-driver)");
        }
        let port = super::free_port();
        // Chromium's own output goes to this log, shown if it cannot be started.
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("chromedriver.log");
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg("--enable-chrome-logs")
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map(Driver)
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let driver_url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if http.get(format!("{driver_url}/status")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A loaded machine may be slow to bring Chromium up: a few tries, each with a fresh
        // profile (one a crashed start left behind stays locked).
        let mut last = Value::Null;
        let mut id = None;
        let mut profile = tempfile::tempdir().unwrap();
        for attempt in 1..=8 {
            profile = tempfile::tempdir().unwrap();
            let args = [
                "--headless=new".to_owned(),
                "--no-sandbox".into(),
                "--disable-gpu".into(),
                "--disable-dev-shm-usage".into(),
                "--disable-background-networking".into(),
                "--disable-component-update".into(),
                "--disable-sync".into(),
                "--disable-quic".into(),
                "--no-first-run".into(),
                format!("--user-data-dir={}", profile.path().display()),
            ]
            .into_iter()
            .chain(extra.iter().cloned())
            .collect::<Vec<_>>();
            let caps = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
            }}});
            let r = http.post(format!("{driver_url}/session")).json(&caps).send().await;
            last = match r {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(e) => json!(e.to_string()),
            };
            if let Some(s) = last["value"]["sessionId"].as_str() {
                id = Some(s.to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_secs(attempt.min(5))).await;
        }
        let id = id.unwrap_or_else(|| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            panic!("no browser session: {last}\nchromedriver log, last lines first:\n{}", tail.join("\n"))
        });
        Some(Self { _driver: driver, _profile: profile, http, base: format!("{driver_url}/session/{id}") })
    }

    async fn try_cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"].get("error").is_some() { Err(v) } else { Ok(v["value"].clone()) }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body).await.unwrap_or_else(|v| panic!("webdriver {path}: {v}"))
    }

    pub async fn open(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn find(&self, css: &str) -> String {
        let v = self.cmd(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    /// The element's text; while a page is loading the element may be missing or stale, so a
    /// few tries.
    pub async fn text(&self, css: &str) -> String {
        let mut last = Value::Null;
        for _ in 0..50 {
            let found = self
                .try_cmd(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
                .await;
            if let Ok(e) = found {
                let id = e[ELEMENT].as_str().unwrap_or_default().to_owned();
                match self.try_cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None).await {
                    Ok(t) => return t.as_str().unwrap_or_default().to_owned(),
                    Err(v) => last = v,
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no text for {css}: {last}")
    }

    pub async fn css(&self, css: &str, property: &str) -> String {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/css/{property}"), None).await.as_str().unwrap().to_owned()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({"text": text}))).await;
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/click"), Some(json!({}))).await;
    }

    /// A virtual WebAuthn authenticator (CTAP2, built in, resident keys) that answers at once,
    /// verifying its user when it can; its id.
    pub async fn add_authenticator(&self, user_verification: bool) -> String {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": user_verification,
            "isUserConsenting": true,
            "isUserVerified": user_verification,
        });
        let v = self.cmd(reqwest::Method::POST, "/webauthn/authenticator", Some(options)).await;
        v.as_str().unwrap().to_owned()
    }

    pub async fn remove_authenticator(&self, id: &str) {
        self.cmd(reqwest::Method::DELETE, &format!("/webauthn/authenticator/{id}"), None).await;
    }

    /// Empties a text field.
    pub async fn clear(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/clear"), Some(json!({}))).await;
    }

    /// Runs `script` in the page (its last argument is the callback that ends it); its answer.
    pub async fn run_async(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/async", Some(json!({"script": script, "args": []}))).await
    }

    /// Runs `script` in the page; its answer.
    pub async fn run(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// The serious and critical accessibility violations axe-core (from npm, in `tests/oidc`)
    /// finds on the page shown; `None` where axe-core is not installed.
    pub async fn serious_violations(&self) -> Option<Vec<Value>> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/node_modules/axe-core/axe.min.js");
        let Ok(axe) = std::fs::read_to_string(path) else {
            return super::unavailable("axe-core", "npm ci --prefix tests/oidc");
        };
        self.run(&format!("{axe}\n;return typeof window.axe;")).await;
        let found = self
            .run_async(
                "var done=arguments[arguments.length-1];\
                 axe.run(document,{resultTypes:['violations']}).then(function(r){done(r.violations\
                 .filter(function(v){return v.impact==='serious'||v.impact==='critical'})\
                 .map(function(v){return {id:v.id,impact:v.impact,help:v.help,nodes:v.nodes.map(function(n){return n.html})}}))},\
                 function(e){done([{id:'axe failed',help:String(e)}])});",
            )
            .await;
        Some(found.as_array().cloned().unwrap_or_default())
    }

    /// Whether the authenticator's user verification (its PIN or biometric) succeeds.
    pub async fn set_user_verified(&self, id: &str, verified: bool) {
        let body = json!({"isUserVerified": verified});
        self.cmd(reqwest::Method::POST, &format!("/webauthn/authenticator/{id}/uv"), Some(body)).await;
    }

    /// The credentials an authenticator holds.
    pub async fn credentials(&self, id: &str) -> Vec<Value> {
        let v = self.cmd(reqwest::Method::GET, &format!("/webauthn/authenticator/{id}/credentials"), None).await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to 10 s) until the element is shown.
    pub async fn shown(&self, css: &str) {
        for _ in 0..100 {
            let found = self
                .try_cmd(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
                .await;
            if let Ok(e) = found {
                let id = e[ELEMENT].as_str().unwrap_or_default().to_owned();
                if let Ok(v) = self.try_cmd(reqwest::Method::GET, &format!("/element/{id}/displayed"), None).await
                    && v.as_bool() == Some(true)
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.try_cmd(reqwest::Method::GET, "/source", None).await.unwrap_or_default();
        let page = page.as_str().unwrap_or_default();
        panic!("{css} was never shown; the page: {}", &page[..page.len().min(3000)]);
    }

    /// Waits for the page's heading to read `want`.
    pub async fn heading_becomes(&self, want: &str) {
        for _ in 0..50 {
            if self.text("h1").await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("heading never became {want:?}; it is {:?}", self.text("h1").await);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let (http, base) = (self.http.clone(), self.base.clone());
        // Best effort: chromedriver dies with us anyway (kill_on_drop).
        tokio::spawn(async move {
            let _ = http.delete(base).send().await;
        });
    }
}
