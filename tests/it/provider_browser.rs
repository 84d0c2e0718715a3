//! authd as an OpenID Provider, seen from outside: an application written with `openid-client`
//! (OpenID certified, from npm in `tests/oidc`) signs its user in through the hosted pages, reads
//! userinfo and refreshes; and a real Chromium goes through the login, the TOTP step and the
//! consent with the keyboard alone, and in Russian.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader, Lines};
use url::Url;

use crate::support::{
    Browser, PASSWORD, TestApp, Tokens, call, claims_of, free_port,
    oidc::{CHALLENGE, VERIFIER, browser, param},
    serve_fake,
};

// ---- An application built with openid-client ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_with_openid_client_signs_in_reads_userinfo_and_refreshes() {
    let app = TestApp::spawn().await;
    openid_client_story(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_with_openid_client_signs_in_on_postgres_too() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    openid_client_story(&app).await;
}

async fn openid_client_story(app: &TestApp) {
    let Some(dir) = openid_client_installed() else { return };
    let issuer = app.url("");
    let admin = app.admin("ops@example.com").await;
    let port = free_port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let (client_id, client_secret) = new_client(
        app,
        &admin.access,
        json!({
            "name": "Notes",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "client_secret_basic",
            "scopes": ["openid", "email", "profile"],
        }),
    )
    .await;
    let nora = app.register("nora@example.com").await;
    let nora_id = nora["id"].as_str().unwrap().to_owned();

    // The application starts: discovery, then its sign-in link (PKCE, state, nonce).
    let mut notes = OpenidClientApp::start(&dir, &issuer, &client_id, &client_secret, port).await;
    let link = notes.authorization_url.clone();
    assert!(link.starts_with(&format!("{issuer}/oauth2/authorize?")), "{link}");

    // Nora follows it, signs in at authd's page, allows Notes, and is sent back to it.
    let nora_browser = browser();
    let back = sign_in_and_allow(&nora_browser, &link, "nora@example.com", PASSWORD, &redirect_uri).await;
    assert_eq!(param(&back, "iss").as_deref(), Some(issuer.as_str()), "{back}");
    let page = nora_browser.get(&back).send().await.unwrap();
    let (status, text) = (page.status(), page.text().await.unwrap());
    let result = notes.result().await;
    assert_eq!(result["ok"], true, "the application failed: {result}");
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("<h1>OK</h1>"), "{text}");

    // What the application learnt, each piece checked by openid-client on the way.
    assert_eq!(result["issuer"], issuer.as_str());
    let id = &result["id_token_claims"];
    assert_eq!(id["sub"], nora_id.as_str(), "{result}");
    assert_eq!(id["iss"], issuer.as_str());
    assert!(names(&id["aud"], &client_id), "{id}");
    assert_eq!(id["email"], "nora@example.com", "{id}");
    assert!(id["auth_time"].is_u64(), "{id}");
    assert_eq!(result["id_token_header"]["alg"], "RS256", "{result}");
    let scope = result["token"]["scope"].as_str().unwrap_or_default();
    assert!(scope.split(' ').any(|s| s == "openid") && scope.split(' ').any(|s| s == "email"), "{scope}");
    assert_eq!(result["userinfo"]["sub"], nora_id.as_str(), "{result}");
    assert_eq!(result["userinfo"]["email"], "nora@example.com", "{result}");

    // The refresh gave a new pair and an ID token about the same sign-in.
    let refresh = &result["refresh"];
    assert_eq!(refresh["id_token"], true, "{refresh}");
    assert_eq!(refresh["refresh_token_rotated"], true, "{refresh}");
    assert_eq!(refresh["new_access_token"], true, "{refresh}");
    let again = &refresh["id_token_claims"];
    assert_eq!(again["sub"], nora_id.as_str(), "{again}");
    assert!(names(&again["aud"], &client_id), "{again}");
    assert_eq!(again["auth_time"], id["auth_time"], "{again}");
    assert_eq!(refresh["userinfo"]["sub"], nora_id.as_str(), "{refresh}");
}

/// `aud` as a string or an array, naming `client_id`.
fn names(aud: &Value, client_id: &str) -> bool {
    aud == client_id || aud.as_array().is_some_and(|a| a.iter().any(|v| v == client_id))
}

/// `tests/oidc`, where `node` and openid-client are installed.
fn openid_client_installed() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    let node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node || !dir.join("node_modules/openid-client").is_dir() {
        return super::support::unavailable(
            "The openid-client application",
            "install node and the test packages: npm ci --prefix tests/oidc",
        );
    }
    Some(dir)
}

/// `tests/oidc/rp.mjs` running: an application with openid-client whose redirect_uri is
/// `http://127.0.0.1:<port>/callback`. It says one JSON object a line on stdout: first
/// `{"authorization_url"}`, then, after the browser came back, `{"ok": true, …}` or
/// `{"ok": false, "step", "error"}`.
struct OpenidClientApp {
    child: tokio::process::Child,
    lines: Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    authorization_url: String,
}

impl OpenidClientApp {
    async fn start(dir: &Path, issuer: &str, client_id: &str, client_secret: &str, port: u16) -> Self {
        let mut child = tokio::process::Command::new("node")
            .current_dir(dir)
            .args(["rp.mjs", issuer, client_id, client_secret, &port.to_string(), "client_secret_basic"])
            .env("AUTHD_RP_TIMEOUT", "120")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let mut app = Self { child, lines, stderr, authorization_url: String::new() };
        let first = app.next("its authorization URL").await;
        let Some(url) = first["authorization_url"].as_str() else {
            return app.fail(&format!("it did not start: {first}")).await;
        };
        app.authorization_url = url.to_owned();
        app
    }

    /// What the application got after the browser came back to it.
    async fn result(&mut self) -> Value {
        self.next("its result").await
    }

    async fn next(&mut self, what: &str) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line()).await;
        match line {
            Ok(Ok(Some(line))) => match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => self.fail(&format!("it said {line:?} instead of {what}")).await,
            },
            Ok(_) => self.fail(&format!("it ended before {what}")).await,
            Err(_) => self.fail(&format!("no {what} within 30 s")).await,
        }
    }

    /// Ends the application and fails the test with `why` and what node printed on stderr.
    async fn fail<T>(&mut self, why: &str) -> T {
        let _ = self.child.start_kill();
        let stderr = tokio::time::timeout(Duration::from_secs(5), &mut self.stderr).await;
        let stderr = stderr.ok().and_then(Result::ok).unwrap_or_default();
        panic!("the openid-client application: {why}\nits stderr:\n{stderr}")
    }
}

// ---- The hosted pages, for a person without script ----

/// A person at authd's pages with a plain HTTP client: from `start` follows the redirects,
/// signs in with `login` and `password`, allows the application; returns the address the
/// browser is sent back to at `redirect_uri`.
async fn sign_in_and_allow(
    b: &reqwest::Client,
    start: &str,
    login: &str,
    password: &str,
    redirect_uri: &str,
) -> String {
    let back = |url: &str| url == redirect_uri || url.starts_with(&format!("{redirect_uri}?"));
    let mut url = start.to_owned();
    let mut r = b.get(&url).send().await.unwrap();
    let (mut signed_in, mut allowed) = (false, false);
    for _ in 0..12 {
        if r.status().is_redirection() {
            let Some(location) = r.headers().get("location") else { panic!("{url} redirects nowhere") };
            url = Url::parse(&url).unwrap().join(location.to_str().unwrap()).unwrap().to_string();
            if back(&url) {
                return url;
            }
            r = b.get(&url).send().await.unwrap();
            continue;
        }
        let (status, headers) = (r.status(), r.headers().clone());
        let html = r.text().await.unwrap();
        let forms = forms_of(&html, &url);
        let (form, fields) = if let Some(form) = forms.iter().find(|f| f.has_input("password")) {
            assert!(!signed_in, "{url} answered {status} with the login form again: {html}");
            signed_in = true;
            (form, form.filled(&[("login", login), ("password", password)]))
        } else if let Some(form) = forms.iter().find(|f| f.has_button("decision", "allow")) {
            assert!(!allowed, "{url} asked for consent again: {html}");
            allowed = true;
            (form, form.filled(&[("decision", "allow")]))
        } else {
            panic!("{url} answered {status} with neither a login form nor a consent: {html}");
        };
        // Pages that ask for a password or a decision are neither cached nor framed.
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(header("cache-control").contains("no-store"), "{url}: {headers:?}");
        assert!(header("content-security-policy").contains("frame-ancestors 'none'"), "{url}: {headers:?}");
        url = form.action.clone();
        r = b.post(&url).form(&fields).send().await.unwrap();
    }
    panic!("too many steps from {start}");
}

/// A form of a page: where it posts, its hidden fields, the names of its inputs, its buttons.
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
    inputs: Vec<String>,
    buttons: Vec<(String, String)>,
}

impl Form {
    fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i == name)
    }

    fn has_button(&self, name: &str, value: &str) -> bool {
        self.buttons.iter().any(|(n, v)| n == name && v == value)
    }

    /// The hidden fields with `values` put in.
    fn filled(&self, values: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> =
            self.hidden.iter().filter(|(n, _)| !values.iter().any(|(k, _)| k == n)).cloned().collect();
        fields.extend(values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        fields
    }
}

/// The forms of `html`, served at `page`.
fn forms_of(html: &str, page: &str) -> Vec<Form> {
    let form_re = regex::Regex::new(r"(?is)<form\b([^>]*)>(.*?)</form>").unwrap();
    let field_re = regex::Regex::new(r"(?is)<(input|button)\b([^>]*)>").unwrap();
    form_re
        .captures_iter(html)
        .map(|f| {
            let action = attr(&f[1], "action").unwrap_or_default();
            let mut form = Form {
                action: Url::parse(page).unwrap().join(&action).unwrap().to_string(),
                hidden: Vec::new(),
                inputs: Vec::new(),
                buttons: Vec::new(),
            };
            for field in field_re.captures_iter(&f[2]) {
                let Some(name) = attr(&field[2], "name") else { continue };
                let value = attr(&field[2], "value").unwrap_or_default();
                if field[1].eq_ignore_ascii_case("button") {
                    form.buttons.push((name, value));
                } else if attr(&field[2], "type").is_some_and(|t| t.eq_ignore_ascii_case("hidden")) {
                    form.hidden.push((name, value));
                } else {
                    form.inputs.push(name);
                }
            }
            form
        })
        .collect()
}

/// The value of attribute `name` in a tag's attributes, unescaped.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let re = regex::Regex::new(&format!(r#"(?i)(?:^|\s){name}\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))"#)).unwrap();
    let c = re.captures(attrs)?;
    let raw = c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)).map_or("", |m| m.as_str());
    Some(unescape(raw))
}

fn unescape(s: &str) -> String {
    [
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#x22;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&#x2f;", "/"),
        ("&#x2F;", "/"),
        ("&#47;", "/"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(s.to_owned(), |s, (from, to)| s.replace(from, to))
}

/// Makes a client through the admin API: its id and secret.
pub(crate) async fn new_client(app: &TestApp, admin: &str, body: Value) -> (String, String) {
    let r = app.post_auth("/v1/admin/clients", admin, &body).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    (created["client_id"].as_str().unwrap().to_owned(), created["client_secret"].as_str().unwrap().to_owned())
}

// ---- The keyboard alone, in Chromium ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosted_login_totp_step_and_consent_work_with_the_keyboard_only() {
    let Some(chromium) = Browser::start().await else { return };
    let app = TestApp::spawn().await;
    let issuer = app.url("");
    let (photos, arrivals) = application_receiver().await;
    let redirect_uri = format!("http://{photos}/callback");
    let admin = app.admin("ops@example.com").await;
    let (client_id, client_secret) = new_client(
        &app,
        &admin.access,
        json!({"name": "Photos", "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    // Mia signs in with a password and a code from her authenticator app.
    let mia = app.register("mia@example.com").await;
    let mia_id = mia["id"].as_str().unwrap().to_owned();
    let t = Tokens::from(&app.login("mia@example.com", PASSWORD).await);
    let (secret, enrolled_at) = turn_on_totp(&app, &t.access).await;

    // Asked for Russian, the login page speaks it.
    chromium.open(&authorize_url(&app, &client_id, &redirect_uri, &[("ui_locales", "ru")])).await;
    let heading = chromium.text("html[lang=ru] h1").await;
    assert!(heading.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c)), "not Russian: {heading:?}");
    chromium.text("html[lang=ru] input[name=login]").await;

    // Photos sends her to authd with a long state, kept byte for byte.
    let state = format!("photos.{}", "0123456789-_~".repeat(10));
    let nonce = "n-0S6_WzA2Mj";
    let link = authorize_url(&app, &client_id, &redirect_uri, &[("state", state.as_str()), ("nonce", nonce)]);
    chromium.open(&link).await;
    // Her login, Tab, her password, Enter.
    chromium.text("input[name=login]").await;
    chromium.type_into("input[name=login]", &format!("mia@example.com\u{E004}{PASSWORD}\u{E007}")).await;
    // The second step: the code, Enter.
    chromium.text("input[name=code]").await;
    chromium.type_into("input[name=code]", &format!("{}\u{E007}", next_code(&secret, enrolled_at))).await;
    // Photos is not trusted: she is asked, and allows with the space bar on the focused button.
    let allow = chromium.text("button[name=decision][value=allow]").await;
    assert!(!allow.trim().is_empty(), "the allow button says nothing");
    assert!(!chromium.text("button[name=decision][value=deny]").await.trim().is_empty());
    chromium.type_into("button[name=decision][value=allow]", "\u{E00D}").await;
    chromium.heading_becomes("Back at Photos").await;

    let arrived = arrivals.lock().unwrap().clone();
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    let back = format!("{redirect_uri}?{}", arrived[0]);
    assert_eq!(param(&back, "error"), None, "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()), "{back}");
    assert_eq!(param(&back, "iss").as_deref(), Some(issuer.as_str()), "{back}");
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));

    // The code is Photos' to trade; the ID token tells that two factors signed her in.
    let r = app
        .http
        .post(app.url("/v1/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let tokens: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], mia_id.as_str(), "{id}");
    assert_eq!(id["nonce"], nonce, "{id}");
    assert_eq!(id["acr"], "2", "{id}");
    assert!(id["amr"].as_array().is_some_and(|a| a.contains(&json!("otp"))), "{id}");
}

/// An authorization request of `client_id` for `redirect_uri`, bound to [`CHALLENGE`].
pub(crate) fn authorize_url(app: &TestApp, client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut u = Url::parse(&app.url("/oauth2/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid email")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    u.into()
}

/// The queries that arrived at an application's `/callback`.
pub(crate) type Arrivals = Arc<Mutex<Vec<String>>>;

/// An application's redirect_uri: keeps each query and answers "Back at Photos".
pub(crate) async fn application_receiver() -> (SocketAddr, Arrivals) {
    use poem::{
        EndpointExt as _, Request, Route, handler,
        web::{Data, Html},
    };
    #[handler]
    fn callback(req: &Request, seen: Data<&Arrivals>) -> Html<&'static str> {
        seen.lock().unwrap().push(req.uri().query().unwrap_or_default().to_owned());
        Html("<!doctype html><html lang=\"en\"><title>Photos</title><h1>Back at Photos</h1></html>")
    }
    let seen: Arrivals = Arc::default();
    let addr = serve_fake(Route::new().at("/callback", poem::get(callback)).data(Arc::clone(&seen))).await;
    (addr, seen)
}

/// Turns TOTP on for a signed-in user: the base32 secret and when it was confirmed.
async fn turn_on_totp(app: &TestApp, access: &str) -> (String, u64) {
    let r = call(app, access, Method::POST, "/v1/me/mfa/totp", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let secret = r.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
    let at = authd::model::now();
    let r = call(app, access, Method::POST, "/v1/me/mfa/totp/confirm", Some(json!({"code": totp(&secret, at)}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    (secret, at)
}

/// A code the confirmation did not spend: the current step's, or the next one while the
/// confirmation's step lasts.
fn next_code(secret: &str, enrolled_at: u64) -> String {
    let step = (authd::model::now() / 30).max(enrolled_at / 30 + 1);
    totp(secret, step * 30)
}

/// RFC 6238 (HMAC-SHA1, 6 digits) for `time`, written from the RFC; `mfa.rs` checks the same
/// algorithm against oathtool and the RFC's vectors.
fn totp(secret_b32: &str, time: u64) -> String {
    let (mut bits, mut n, mut key) = (0u64, 0, Vec::new());
    for c in secret_b32.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {secret_b32}"),
        };
        bits = (bits << 5) | u64::from(v);
        n += 5;
        if n >= 8 {
            n -= 8;
            key.push((bits >> n) as u8);
        }
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key);
    let mac = ring::hmac::sign(&key, &(time / 30).to_be_bytes());
    let m = mac.as_ref();
    let off = usize::from(m[19] & 0x0f);
    let bin = u32::from_be_bytes([m[off] & 0x7f, m[off + 1], m[off + 2], m[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_repeated_failures_the_hosted_login_has_the_browser_solve_a_proof_of_work() {
    let Some(chromium) = Browser::start().await else { return };
    // A challenge after the first failure, and a small one: the story, not the cost, is tested.
    let app = TestApp::spawn_with(|c| {
        c.brute_force.challenge_after = 1;
        c.challenge.difficulty = 10;
    })
    .await;
    let (photos, arrivals) = application_receiver().await;
    let redirect_uri = format!("http://{photos}/callback");
    let admin = app.admin("ops@example.com").await;
    let body = json!({"name": "Photos", "redirect_uris": [redirect_uri], "trusted": true});
    let (client_id, _) = new_client(&app, &admin.access, body).await;
    app.register("ana@example.com").await;

    chromium.open(&authorize_url(&app, &client_id, &redirect_uri, &[("state", "s")])).await;
    chromium.text("input[name=login]").await;
    chromium.type_into("input[name=login]", "ana@example.com\u{E004}not her password\u{E007}").await;
    // The form comes back carrying a challenge; her browser solves it when she signs in again.
    chromium.text("input[name=challenge]").await;
    chromium.type_into("input[name=password]", &format!("{PASSWORD}\u{E007}")).await;
    chromium.heading_becomes("Back at Photos").await;
    let arrived = arrivals.lock().unwrap().clone();
    let back = format!("{redirect_uri}?{}", arrived.last().unwrap());
    assert!(param(&back, "code").is_some(), "{back}");

    // Without the work done, the same form is refused and offers a challenge again.
    let b = browser();
    let r = b.get(authorize_url(&app, &client_id, &redirect_uri, &[])).send().await.unwrap();
    let login = r.headers()["location"].to_str().unwrap().to_owned();
    let html = b.get(app.url(&login)).send().await.unwrap().text().await.unwrap();
    let field = |html: &str, name: &str| {
        let re = regex::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
        re.captures(html).map(|c| c[1].replace("&#x2f;", "/")).unwrap_or_default()
    };
    let form = [
        ("csrf", field(&html, "csrf")),
        ("request", field(&html, "request")),
        ("login", "ana@example.com".to_owned()),
        ("password", "wrong again".to_owned()),
    ];
    let r = b.post(app.url("/ui/login")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"name="challenge""#), "{html}");
    let mut form = form.to_vec();
    form[0].1 = field(&html, "csrf");
    form[3].1 = PASSWORD.to_owned();
    let r = b.post(app.url("/ui/login")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a right password without the work is not enough");
}
