//! Forward-auth over HTTP, as a proxy asks: nginx's `auth_request` and Traefik's and Caddy's
//! forward-auth conventions, the rules, the identity headers, the hosted login's `rd`, logout.

use authd::config::{Config, ForwardRule, Policy};
use reqwest::{Client, Response, StatusCode};
use serde_json::json;

use crate::support::{PASSWORD, TestApp, Tokens, oidc::browser};

fn rule(host: &str, paths: &[&str], policy: Policy, roles: &[&str]) -> ForwardRule {
    ForwardRule {
        host: host.into(),
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        methods: Vec::new(),
        scheme: Some("http".into()),
        policy,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        permissions: Vec::new(),
        networks: Vec::new(),
    }
}

fn rules(c: &mut Config) {
    c.forward_auth.rules = vec![
        rule("app.test", &["/public"], Policy::Bypass, &[]),
        rule("app.test", &["/admin"], Policy::SignedIn, &["admin"]),
        rule("app.test", &["/closed"], Policy::Deny, &[]),
        rule("app.test", &[], Policy::SignedIn, &[]),
        rule("vault.test", &[], Policy::Mfa, &[]),
    ];
}

/// Signs in on the hosted login with `rd`; the answer, and the forward-auth cookie and the
/// session cookie it set (`name=value`).
async fn hosted_sign_in(app: &TestApp, b: &Client, who: &str, rd: &str) -> (Response, String, String) {
    let q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    let html = b.get(app.url(&format!("/ui/login?rd={q}"))).send().await.unwrap().text().await.unwrap();
    let re = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap();
    let csrf = re.captures(&html).unwrap()[1].to_owned();
    assert!(html.contains("name=\"rd\" value=\"") && !html.contains("name=\"rd\" value=\"\""), "{html}");
    let form = [("csrf", csrf.as_str()), ("login", who), ("password", PASSWORD), ("rd", rd)];
    let r = b.post(app.url("/ui/login")).form(&form).send().await.unwrap();
    let set = |name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (forward, session) = (set("authd_forward"), set("authd_session"));
    (r, forward, session)
}

/// nginx's question.
async fn nginx(app: &TestApp, url: &str, method: &str, cookie: Option<&str>) -> Response {
    let mut r = app
        .http
        .get(app.url("/v1/authz/auth-request"))
        .header("X-Original-URL", url)
        .header("X-Original-Method", method);
    if let Some(c) = cookie {
        r = r.header("Cookie", c);
    }
    r.send().await.unwrap()
}

/// Traefik's and Caddy's question.
async fn traefik(app: &TestApp, method: &str, host: &str, uri: &str, extra: &[(&str, &str)]) -> Response {
    // A proxy follows no redirect: it hands it to the browser.
    let mut r = browser()
        .get(app.url("/v1/authz/forward-auth"))
        .header("X-Forwarded-Method", method)
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", host)
        .header("X-Forwarded-Uri", uri);
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn header(r: &Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_asks_and_authd_answers_by_the_rules() {
    let app = TestApp::spawn_with(rules).await;
    app.register("fay@example.com").await;
    let t = Tokens::from(&app.login("fay@example.com", PASSWORD).await);
    let patch = json!({"name": "Fay Doë"});
    app.http.patch(app.url("/v1/me")).bearer_auth(&t.access).json(&patch).send().await.unwrap();

    // Not signed in: nginx gets 401 with the hosted login in Location, coming back to the page.
    let r = nginx(&app, "http://app.test/notes?id=7", "GET", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let login = header(&r, "location");
    assert_eq!(login, format!("{}/ui/login?rd=http%3A%2F%2Fapp.test%2Fnotes%3Fid%3D7", app.url("")));
    // A bypass path passes, with every identity header present and empty.
    let r = nginx(&app, "http://app.test/public/logo.png", "GET", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    for h in ["remote-user", "remote-email", "remote-name", "remote-groups", "remote-session"] {
        assert_eq!(header(&r, h), "", "{h}");
    }
    // What no rule covers, and what a rule denies, is refused.
    assert_eq!(nginx(&app, "http://other.test/", "GET", None).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(nginx(&app, "http://app.test/closed", "GET", None).await.status(), StatusCode::FORBIDDEN);
    // A path the application might read otherwise than the rules is refused, even under a
    // bypass path; the path's case counts.
    for p in
        ["/public/%2e%2e/notes", "/public/..%2Fnotes", "/public//../notes", "/public/..;/notes", "/public\\..\\notes"]
    {
        let r = nginx(&app, &format!("http://app.test{p}"), "GET", None).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{p}");
    }
    assert_eq!(nginx(&app, "http://app.test/PUBLIC/x", "GET", None).await.status(), StatusCode::UNAUTHORIZED);

    // Signing in on the hosted login comes back to the page.
    let b = browser();
    let (r, cookie, page_cookie) = hosted_sign_in(&app, &b, "fay@example.com", "http://app.test/notes?id=7").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&r, "location"), "http://app.test/notes?id=7");
    let r = nginx(&app, "http://app.test/notes?id=7", "GET", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "remote-user"), "fay@example.com");
    assert_eq!(header(&r, "remote-email"), "fay@example.com");
    // Outside ASCII, percent-encoded rather than left out.
    assert_eq!(header(&r, "remote-name"), "Fay Do%C3%AB");
    assert_eq!(header(&r, "remote-groups"), "user");
    assert!(!header(&r, "remote-session").is_empty());
    // The forward-auth cookie opens forward-auth only: not the account page, which the
    // applications it is shared with must not reach; and the page's own cookie is no
    // forward-auth cookie.
    let value = cookie.split_once('=').unwrap().1;
    let r =
        browser().get(app.url("/ui/account")).header("Cookie", format!("authd_session={value}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(header(&r, "location").starts_with("/ui/login"));
    assert_eq!(b.get(app.url("/ui/account")).send().await.unwrap().status(), StatusCode::OK);
    let r =
        nginx(&app, "http://app.test/notes", "GET", Some(&page_cookie.replace("authd_session", "authd_forward"))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A role the user lacks: 403.
    assert_eq!(nginx(&app, "http://app.test/admin/", "GET", Some(&cookie)).await.status(), StatusCode::FORBIDDEN);
    // A bearer token works as the cookie does.
    let r = app
        .http
        .get(app.url("/v1/authz/auth-request"))
        .header("X-Original-URL", "http://app.test/api")
        .header("X-Original-Method", "POST")
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Traefik and Caddy: a browser's navigation is redirected, anything else gets 401.
    let html = [("Accept", "text/html,application/xhtml+xml")];
    let r = traefik(&app, "GET", "app.test", "/notes", &html).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(header(&r, "location").ends_with("/ui/login?rd=http%3A%2F%2Fapp.test%2Fnotes"));
    assert_eq!(traefik(&app, "POST", "app.test", "/notes", &html).await.status(), StatusCode::SEE_OTHER);
    let xhr = [("Accept", "text/html"), ("X-Requested-With", "XMLHttpRequest")];
    assert_eq!(traefik(&app, "GET", "app.test", "/notes", &xhr).await.status(), StatusCode::UNAUTHORIZED);
    // X-Original-URL, which a client can send through these proxies, counts for nothing here.
    let sneaky = [("X-Original-URL", "http://app.test/public/x")];
    assert_eq!(traefik(&app, "GET", "app.test", "/notes", &sneaky).await.status(), StatusCode::UNAUTHORIZED);
    let r = traefik(&app, "GET", "app.test", "/notes", &[("Cookie", cookie.as_str())]).await;
    assert_eq!((r.status(), header(&r, "remote-user")), (StatusCode::OK, "fay@example.com".to_owned()));

    // Without its target headers, either endpoint answers 400.
    let r = app.http.get(app.url("/v1/authz/auth-request")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r =
        app.http.get(app.url("/v1/authz/forward-auth")).header("X-Forwarded-Host", "app.test").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Target headers that make no URL are a clear 422.
    let r = nginx(&app, "not a url", "GET", None).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Logout at authd locks every application on the next request.
    // The browser holds the session cookie and the form's CSRF cookie.
    let html = b.get(app.url("/ui/logout")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("action=\"&#x2f;ui&#x2f;logout\""), "{html}");
    let re = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap();
    let csrf = re.captures(&html).unwrap()[1].to_owned();
    let r =
        b.post(app.url("/ui/logout")).form(&[("csrf", csrf.as_str()), ("decision", "logout")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = nginx(&app, "http://app.test/notes", "GET", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rd_never_leads_off_the_covered_hosts_and_disabling_locks_at_once() {
    let app = TestApp::spawn_with(rules).await;
    let admin = app.admin("root@example.com").await;
    let gus = app.register("gus@example.com").await;
    let b = browser();
    for rd in ["http://evil.test/", "https://app.test.evil.test/", "javascript:alert(1)", "//evil.test/"] {
        let (r, _, _) = hosted_sign_in(&app, &b, "gus@example.com", rd).await;
        assert_eq!(r.status(), StatusCode::OK, "{rd}: a page, never a redirect");
        assert!(r.headers().get("location").is_none(), "{rd}");
    }
    // Followed as parsed, never as the raw text.
    let (r, cookie, _) = hosted_sign_in(&app, &b, "gus@example.com", "HTTP://App.Test./Notes?x=1").await;
    assert_eq!(r.headers()["location"], "http://app.test./Notes?x=1");
    assert_eq!(nginx(&app, "http://app.test/", "GET", Some(&cookie)).await.status(), StatusCode::OK);
    let id = gus["id"].as_str().unwrap();
    let r = app
        .http
        .patch(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&admin.access)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(nginx(&app, "http://app.test/", "GET", Some(&cookie)).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mfa_rule_sends_a_password_only_session_back_to_sign_in() {
    let app = TestApp::spawn_with(rules).await;
    app.register("hal@example.com").await;
    let b = browser();
    let (_, cookie, _) = hosted_sign_in(&app, &b, "hal@example.com", "http://vault.test/").await;
    let r = nginx(&app, "http://vault.test/", "GET", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&r, "location").contains("/ui/login?rd="));
    // The same session passes where one factor is enough.
    assert_eq!(nginx(&app, "http://app.test/", "GET", Some(&cookie)).await.status(), StatusCode::OK);
}

/// The operator's view: which rule decides and why, and rules that can never match.
#[tokio::test]
async fn the_cli_says_which_rule_decides_and_finds_rules_that_never_match() {
    use crate::support::{binary, private_dir};
    let dir = private_dir();
    let d = dir.path();
    let rules = r#"
[[forward_auth.rules]]
host = "app.example.com"
paths = ["/public"]
policy = "bypass"

[[forward_auth.rules]]
host = "app.example.com"
paths = ["/admin"]
policy = "signed_in"
roles = ["admin"]

[[forward_auth.rules]]
host = "app.example.com"
paths = ["/vault"]
policy = "mfa"

[[forward_auth.rules]]
host = "*.example.com"
policy = "signed_in"
"#;
    std::fs::write(d.join("config.toml"), rules).unwrap();
    binary::ok(d, &["user", "add", "ivy@example.com"], None).await;
    binary::ok(d, &["user", "add", "root@example.com", "--role", "admin"], None).await;

    let out =
        binary::ok(d, &["forward-auth", "test", "https://app.example.com/admin/x", "--user", "ivy@example.com"], None)
            .await;
    assert!(out.contains("forward_auth.rules[1]") && out.contains(r#"roles = ["admin"]"#), "{out}");
    assert!(out.contains("decision: forbidden") && out.contains("[admin]") && out.contains("[user]"), "{out}");
    let out =
        binary::ok(d, &["forward-auth", "test", "https://app.example.com/admin/x", "--user", "root@example.com"], None)
            .await;
    assert!(out.contains("decision: allow"), "{out}");
    // Two factors or not, for the mfa rule; not signed in, for anyone.
    let vault = "https://app.example.com/vault/";
    let out = binary::ok(d, &["forward-auth", "test", vault, "--user", "root@example.com"], None).await;
    assert!(out.contains("forward_auth.rules[2]") && out.contains("decision: sign_in"), "{out}");
    assert!(out.contains("two factors"), "{out}");
    let out = binary::ok(d, &["forward-auth", "test", vault, "--user", "root@example.com", "--mfa"], None).await;
    assert!(out.contains("decision: allow"), "{out}");
    let out = binary::ok(d, &["forward-auth", "test", "https://app.example.com/admin/x", "--json"], None).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["rule"].as_u64(), v["decision"].as_str()), (Some(1), Some("sign_in")), "{out}");
    // A path that could be read two ways is refused before any rule.
    let out = binary::ok(d, &["forward-auth", "test", "https://app.example.com/public/../admin"], None).await;
    assert!(out.contains("rule:     none") && out.contains("decision: forbidden") && out.contains("dot"), "{out}");
    let out = binary::ok(d, &["forward-auth", "test", "https://other.test/", "--method", "POST"], None).await;
    assert!(out.contains("rule:     none") && out.contains("decision: forbidden"), "{out}");
    // Bad input: a clear error, nothing changed.
    binary::fails(d, &["forward-auth", "test", "not a url"], "an absolute http(s) URL").await;
    binary::fails(
        d,
        &["forward-auth", "test", "https://app.example.com/", "--user", "nobody@example.com"],
        "not_found",
    )
    .await;

    // A rule the one before it wholly covers is reported, and config check fails.
    assert!(binary::run(d, &["config", "check"], None).await.ok);
    let shadowed = format!(
        "{rules}\n[[forward_auth.rules]]\nhost = \"app.example.com\"\npaths = [\"/admin/users\"]\npolicy = \"deny\"\n"
    );
    std::fs::write(d.join("config.toml"), shadowed).unwrap();
    binary::fails(d, &["config", "check"], "forward_auth.rules[4] can never match: forward_auth.rules[1]").await;
}
