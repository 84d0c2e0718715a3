//! Forward-auth through real proxies: nginx, Caddy and Traefik each run the sample shipped under
//! `contrib/` in front of authd (`auth.example.com`) and an application that echoes what it
//! receives (`app.example.com`), all on 127.0.0.1 over TLS. Each goes through the same story.

use authd::config::{Config, ForwardRule, Policy};
use poem::{Request, handler, web::Json};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::{
    mfa::{code_at, enrol, now},
    support::{Browser, PASSWORD, Proxy, ProxyKind, TestApp, Tokens, free_port, serve_fake},
};

/// The application: what reached it, as JSON; `names` lists every header name as often as it
/// came.
#[handler]
fn echo(req: &Request) -> Json<Value> {
    let headers: serde_json::Map<String, Value> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default()))).collect();
    let names: Vec<&str> = req.headers().iter().map(|(k, _)| k.as_str()).collect();
    Json(json!({"uri": req.uri().to_string(), "headers": headers, "names": names}))
}

/// The identity headers the application got, by any spelling (`Remote_User`, `Remote.User`).
fn identity_names(seen: &Value) -> Vec<String> {
    let names = seen["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned());
    names.filter(|n| n.replace(['_', '.'], "-").starts_with("remote-")).collect()
}

/// No alias of an identity header, and none twice: nothing of the client's own survived.
fn assert_identity_headers_are_authds(seen: &Value) {
    let names = identity_names(seen);
    assert!(names.iter().all(|n| n.starts_with("remote-")), "an alias passed: {seen}");
    let mut once = names.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), names.len(), "a header came twice: {seen}");
}

fn rule(paths: &[&str], policy: Policy, roles: &[&str]) -> ForwardRule {
    ForwardRule {
        host: "app.example.com".into(),
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        methods: Vec::new(),
        scheme: None,
        policy,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        permissions: Vec::new(),
        networks: Vec::new(),
    }
}

/// authd as the samples describe it: behind the proxy at `auth.example.com`, one sign-in for
/// every application under `example.com`.
fn behind_proxy(c: &mut Config, port: u16) {
    c.server.public_url = Some(format!("https://auth.example.com:{port}"));
    c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    c.forward_auth.cookie_domain = Some("example.com".into());
    c.forward_auth.rules = vec![
        rule(&["/public"], Policy::Bypass, &[]),
        rule(&["/admin"], Policy::SignedIn, &["admin"]),
        rule(&["/vault"], Policy::Mfa, &[]),
        rule(&[], Policy::SignedIn, &[]),
    ];
}

/// authd, the application and the proxy, started; `None` where the proxy is not installed.
async fn stack(kind: ProxyKind) -> Option<(TestApp, Proxy)> {
    let port = free_port();
    let app = serve_fake(echo).await;
    let authd = TestApp::spawn_with(|c| behind_proxy(c, port)).await;
    let proxy = Proxy::start(kind, port, authd.addr, app).await?;
    Some((authd, proxy))
}

fn location(r: &Response) -> String {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn hidden(html: &str, name: &str) -> String {
    let re = regex::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
    re.captures(html).unwrap_or_else(|| panic!("no {name} in {html}"))[1].to_owned()
}

/// A browser's navigation to `url` through the proxy.
async fn navigate(b: &Client, url: &str, extra: &[(&str, &str)]) -> Response {
    let mut r = b.get(url).header("Accept", "text/html,application/xhtml+xml");
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

/// What the application saw of a navigation that authd let through.
async fn seen(proxy: &Proxy, b: &Client, url: &str, extra: &[(&str, &str)]) -> Value {
    let r = navigate(b, url, extra).await;
    assert_eq!(r.status(), StatusCode::OK, "{url} via {:?}: {}", proxy.kind, proxy.log());
    r.json().await.unwrap()
}

/// The hosted login (at `login`, a URL with its `rd`): the password step's answer.
async fn password_step(b: &Client, login: &str, who: &str) -> Response {
    let html = b.get(login).send().await.unwrap().text().await.unwrap();
    let rd = url::Url::parse(login).unwrap().query_pairs().find(|(k, _)| k == "rd").map(|(_, v)| v.into_owned());
    let form = [
        ("csrf", hidden(&html, "csrf")),
        ("login", who.to_owned()),
        ("password", PASSWORD.to_owned()),
        ("rd", rd.unwrap_or_default()),
    ];
    let at = login.split("/ui/login").next().unwrap();
    b.post(format!("{at}/ui/login")).form(&form).send().await.unwrap()
}

/// The application's page, the hosted login it leads to when not signed in, and the way back.
async fn sent_to_sign_in(proxy: &Proxy, b: &Client, page: &str) -> String {
    let r = navigate(b, page, &[]).await;
    assert_eq!(r.status(), StatusCode::FOUND, "{page} via {:?}: {}", proxy.kind, proxy.log());
    let login = location(&r);
    assert_eq!(login, format!("{}?rd={}", proxy.url("auth", "/ui/login"), encoded(page)));
    login
}

async fn story(kind: ProxyKind) {
    let Some((authd, proxy)) = stack(kind).await else { return };
    authd.register("ivy@example.com").await;
    let b = proxy.client();

    // Not signed in: to the hosted login, and back to the page after signing in.
    let page = proxy.url("app", "/notes?id=7");
    let login = sent_to_sign_in(&proxy, &b, &page).await;
    let r = password_step(&b, &login, "ivy@example.com").await;
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, page.clone()));

    // The application sees who it is, and never the client's own word for it.
    let forged = [
        ("Remote-User", "root@example.com"),
        ("Remote_User", "root@example.com"),
        ("Remote.User", "root@example.com"),
        ("Remote-Groups", "admin"),
        ("Remote-Name", "Root"),
    ];
    let s = seen(&proxy, &b, &page, &forged).await;
    assert_eq!(s["uri"], "/notes?id=7");
    assert_eq!(s["headers"]["remote-user"], "ivy@example.com");
    assert_eq!(s["headers"]["remote-email"], "ivy@example.com");
    assert_eq!(s["headers"]["remote-groups"], "user");
    assert!(s["headers"]["remote-session"].as_str().is_some_and(|v| !v.is_empty()), "{s}");
    assert!(s["headers"]["remote-name"].as_str().unwrap_or_default().is_empty(), "{s}");
    // Each identity header once, in its own spelling: no copy or alias of the client's survives.
    assert_identity_headers_are_authds(&s);
    // Anonymous on a bypass path: let through, and a forged identity is not passed on.
    let anon = proxy.client();
    let s = seen(&proxy, &anon, &proxy.url("app", "/public/logo.png"), &forged).await;
    assert_identity_headers_are_authds(&s);
    assert!(identity_names(&s).iter().all(|n| s["headers"][n] == ""), "{s}");
    // A path the application might read otherwise than the rules never reaches it as such:
    // refused, or made plain by the proxy before authd and the application both see it.
    for p in ["/public/..%2Fadmin/", "/public//admin/", "/public/..;/admin/"] {
        let r = navigate(&anon, &proxy.url("app", p), &[]).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        let plain = |uri: &str| !uri.contains("//") && !uri.contains("..") && !uri.contains(';') && !uri.contains('%');
        let passed_plain = status == StatusCode::OK
            && serde_json::from_str::<Value>(&body).is_ok_and(|v| v["uri"].as_str().is_some_and(plain));
        assert!(
            matches!(status.as_u16(), 400 | 403 | 404) || passed_plain,
            "{p} via {:?}: {status} {body}",
            proxy.kind
        );
    }

    // A rule's role the user lacks: 403.
    let r = navigate(&b, &proxy.url("app", "/admin/"), &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // rd to a host no rule covers ends on authd's own page, never a redirect there.
    for rd in ["https://evil.example.net/", "https://app.example.com.evil.net/", "//evil.example.net/"] {
        let r = password_step(&b, &format!("{}?rd={}", proxy.url("auth", "/ui/login"), encoded(rd)), "ivy@example.com")
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{rd}");
        assert_eq!(location(&r), "", "{rd}");
    }

    // An mfa rule sends a password-only session through the TOTP step, then back.
    let t = Tokens::from(&authd.login("ivy@example.com", PASSWORD).await);
    let (secret, _) = enrol(&authd, &t.access).await;
    let vault = proxy.url("app", "/vault/keys");
    let login = sent_to_sign_in(&proxy, &b, &vault).await;
    let r = password_step(&b, &login, "ivy@example.com").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let form = [
        ("csrf", hidden(&html, "csrf")),
        ("mfa", hidden(&html, "mfa")),
        ("rd", vault.clone()),
        ("code", code_at(&secret, now() + 30)),
    ];
    let r = b.post(proxy.url("auth", "/ui/login/code")).form(&form).send().await.unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, vault.clone()));
    assert_eq!(seen(&proxy, &b, &vault, &[]).await["headers"]["remote-user"], "ivy@example.com");

    // Signing out at authd locks the application on its next request.
    let html = b.get(proxy.url("auth", "/ui/logout")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", hidden(&html, "csrf")), ("decision", "logout".to_owned())];
    let r = b.post(proxy.url("auth", "/ui/logout")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    sent_to_sign_in(&proxy, &b, &page).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx() {
    story(ProxyKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy() {
    story(ProxyKind::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_traefik() {
    story(ProxyKind::Traefik).await;
}

/// In Chromium, behind Traefik: the application's page, the hosted login, and back to the page
/// with the user's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_once_and_lands_on_the_application() {
    let Some((authd, proxy)) = stack(ProxyKind::Traefik).await else { return };
    authd.register("kit@example.com").await;
    let rules = "--host-resolver-rules=MAP *.example.com 127.0.0.1, MAP example.com 127.0.0.1".to_owned();
    let Some(chromium) = Browser::start_with(&[rules, "--ignore-certificate-errors".into()]).await else { return };
    let page = proxy.url("app", "/notes?id=9");
    chromium.open(&page).await;
    chromium.type_into("input[name=login]", &format!("kit@example.com\u{E004}{PASSWORD}\u{E007}")).await;
    let mut shown = Value::Null;
    for _ in 0..50 {
        let text = chromium.run("return document.body ? document.body.innerText : ''").await;
        if let Ok(v) = serde_json::from_str::<Value>(text.as_str().unwrap_or_default()) {
            shown = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(shown["uri"], "/notes?id=9", "{}", proxy.log());
    assert_eq!(shown["headers"]["remote-user"], "kit@example.com");
    // The same session opens the application's other pages without another sign-in.
    chromium.open(&proxy.url("app", "/notes?id=10")).await;
    let text = chromium.run("return document.body.innerText").await;
    let v: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
    assert_eq!(v["uri"], "/notes?id=10");
}
