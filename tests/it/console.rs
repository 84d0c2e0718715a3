//! The admin console over HTTP, as a browser without script uses it: sign in on the hosted login,
//! then pages and forms, each refused where the viewer's permissions, the CSRF token or a fresh
//! sign-in are missing. The Chromium story is in `console_browser`.

use authd::config::HumanDuration;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, oidc::browser};

/// Signs `who` in on the hosted login in browser `b`.
pub(crate) async fn console_sign_in(app: &TestApp, b: &Client, who: &str) {
    let html = b.get(app.url("/ui/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", field(&html, "csrf")), ("login", who.to_owned()), ("password", PASSWORD.to_owned())];
    let r = b.post(app.url("/ui/login")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{who} signs in");
}

fn field(html: &str, name: &str) -> String {
    let re = regex::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
    re.captures(html).unwrap_or_else(|| panic!("no {name} in {html}"))[1].to_owned()
}

/// Opens a console page; its status and HTML.
async fn open(app: &TestApp, b: &Client, path: &str) -> (StatusCode, String) {
    let r = b.get(app.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Posts a form of the user page at `path` (its CSRF token read from the page, as a browser
/// would send it).
async fn act(app: &TestApp, b: &Client, path: &str, action: &str, item: &str) -> Response {
    let (_, mut html) = open(app, b, path).await;
    if !html.contains("name=\"csrf\"") {
        // A page with no form for this viewer: a forger takes the token of any other page.
        html = open(app, b, "/ui/account").await.1;
    }
    let form = [("csrf", field(&html, "csrf")), ("action", action.to_owned()), ("item", item.to_owned())];
    b.post(app.url(path)).form(&form).send().await.unwrap()
}

async fn user_id(app: &TestApp, admin: &str, email: &str) -> String {
    let r = app.get_auth(&format!("/v1/admin/users?q={email}"), admin).await;
    let v: Value = r.json().await.unwrap();
    v["users"][0]["id"].as_str().unwrap_or_else(|| panic!("{email}: {v}")).to_owned()
}

async fn roles_of(app: &TestApp, admin: &str, id: &str) -> Value {
    let v: Value = app.get_auth(&format!("/v1/admin/users/{id}"), admin).await.json().await.unwrap();
    v["roles"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_finds_a_user_disables_them_grants_a_role_and_reads_the_trail() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let zed = app.signed_in("zed1@example.com").await;
    let zed2 = app.signed_in("zed2@example.com").await;
    app.register("amy@example.com").await;
    let b = browser();

    // Not signed in: to the hosted login, coming back to the console.
    let r = b.get(app.url("/ui/admin/users?q=zed")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/login?lang=en&rd=%2Fui%2Fadmin%2Fusers%3Fq%3Dzed");
    console_sign_in(&app, &b, "root@example.com").await;

    // Every section, and the page framed by nobody.
    let r = b.get(app.url("/ui/admin")).send().await.unwrap();
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let html = r.text().await.unwrap();
    for section in ["/ui/admin/users", "/ui/admin/audit", "/ui/admin/keys"] {
        assert!(html.contains(&format!("href=\"{section}?")), "{section}: {html}");
    }

    // Found by the start of the login, not others.
    let (s, html) = open(&app, &b, "/ui/admin/users?q=zed").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("zed1@example.com") && html.contains("zed2@example.com"), "{html}");
    assert!(!html.contains("amy@example.com"), "{html}");

    // Disabled: the user's next call is refused.
    let id = user_id(&app, &root.access, "zed1@example.com").await;
    let page = format!("/ui/admin/users/{id}");
    let r = act(&app, &b, &page, "disable", "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.status_of_me(&zed.access).await, StatusCode::UNAUTHORIZED);
    let (_, html) = open(&app, &b, &page).await;
    assert!(html.contains(r#"<dd id="status">disabled</dd>"#), "{html}");

    // A role granted, a session ended.
    let id2 = user_id(&app, &root.access, "zed2@example.com").await;
    let page2 = format!("/ui/admin/users/{id2}");
    assert_eq!(act(&app, &b, &page2, "grant", "moderator").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(roles_of(&app, &root.access, &id2).await, json!(["user", "moderator"]));
    let r = act(&app, &b, &page2, "end_session", "not-a-session").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let sessions: Value =
        app.get_auth(&format!("/v1/admin/users/{id2}/sessions"), &root.access).await.json().await.unwrap();
    let session = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(act(&app, &b, &page2, "end_session", &session).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.refresh(&zed2.refresh).await.status(), StatusCode::UNAUTHORIZED);

    // A recovery link, shown once.
    let r = act(&app, &b, &page2, "recovery_link", "").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"recovery-link\"") && html.contains("recover?token="), "{html}");

    // A new signing key.
    let (_, html) = open(&app, &b, "/ui/admin/keys").await;
    let before = html.matches(">active<").count();
    let r = b.post(app.url("/ui/admin/keys")).form(&[("csrf", field(&html, "csrf"))]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = open(&app, &b, "/ui/admin/keys").await;
    assert!(html.matches(">retiring<").count() + html.matches(">active<").count() > before, "{html}");

    // What was just done, in the audit log and on the user's trail.
    let (_, html) = open(&app, &b, "/ui/admin/audit?event=user.disabled").await;
    assert!(html.contains("user.disabled") && html.contains(&id), "{html}");
    assert!(!html.contains("user.roles_changed"), "{html}");
    let (_, html) = open(&app, &b, "/ui/admin/audit?user=zed2%40example.com").await;
    assert!(html.contains(&id2) && !html.contains(&id), "{html}");
    let (_, html) = open(&app, &b, &page).await;
    assert!(html.contains("id=\"trail\"") && html.contains("user.disabled"), "{html}");

    // The overview: how many users, sign-ins and failures over the day, and their course.
    let r = app.post("/v1/auth/login", &json!({"login": "amy@example.com", "password": "not her password"})).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // (Failures reach the audit log a moment later, in a batch.)
    let mut html = String::new();
    for _ in 0..50 {
        html = open(&app, &b, "/ui/admin").await.1;
        if html.contains(r#"<dd id="failures-day">1</dd>"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(html.contains(r#"<strong id="user-count">4</strong>"#), "{html}");
    let re = regex::Regex::new(r#"<strong id="session-count">(\d+)</strong>"#).unwrap();
    let open_sessions: u32 = re.captures(&html).unwrap_or_else(|| panic!("{html}"))[1].parse().unwrap();
    // At least root's two (the API's and the hosted login's), at most every one opened here.
    assert!((2..=6).contains(&open_sessions), "{open_sessions}");
    // root's sign-ins (API and hosted login), zed1's and zed2's.
    assert!(html.contains(r#"<dd id="logins-day">4</dd>"#), "{html}");
    assert!(html.contains(r#"<dd id="failures-day">1</dd>"#), "{html}");
    assert_eq!(html.matches("<rect ").count(), 48, "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_only_what_they_may_and_forged_or_stale_posts_change_nothing() {
    let app = TestApp::spawn_with(|c| c.security.step_up_window = HumanDuration::secs(5)).await;
    let root = app.admin("root@example.com").await;
    let r = app
        .post_auth("/v1/admin/roles", &root.access, &json!({"name": "helpdesk", "permissions": ["users:read"]}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.user_with_roles("help@example.com", &["helpdesk"]).await;
    let zed = app.signed_in("zed@example.com").await;
    let id = user_id(&app, &root.access, "zed@example.com").await;
    let page = format!("/ui/admin/users/{id}");

    // users:read alone: the user, and no button that would fail; no keys or audit sections.
    let help = browser();
    console_sign_in(&app, &help, "help@example.com").await;
    let (s, html) = open(&app, &help, &page).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("zed@example.com"), "{html}");
    for absent in [
        "value=\"disable\"",
        "value=\"grant\"",
        "value=\"end_sessions\"",
        "value=\"recovery_link\"",
        "href=\"/ui/admin/keys",
    ] {
        assert!(!html.contains(absent), "{absent}: {html}");
    }
    // Forged POSTs are refused, and nothing changes: by the console's own check, and (for an
    // action it does not guard) by the service behind it.
    let r = act(&app, &help, &page, "disable", "").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.status_of_me(&zed.access).await, StatusCode::OK);
    let r = act(&app, &help, &page, "revoke", "user").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(roles_of(&app, &root.access, &id).await, json!(["user"]));
    let (s, _) = open(&app, &help, "/ui/admin/keys").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Without the form's CSRF token: refused.
    let admin = browser();
    console_sign_in(&app, &admin, "root@example.com").await;
    let r = admin.post(app.url(&page)).form(&[("csrf", "forged"), ("action", "disable")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.status_of_me(&zed.access).await, StatusCode::OK);

    // Past the step-up window a destructive action asks for a fresh sign-in, which comes back.
    // (Sign-in times count in whole seconds.)
    tokio::time::sleep(std::time::Duration::from_millis(6100)).await;
    // Whatever gives power wants it too: a recovery link, a role, a new client.
    assert_eq!(act(&app, &admin, &page, "recovery_link", "").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(act(&app, &admin, &page, "grant", "admin").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(roles_of(&app, &root.access, &id).await, json!(["user"]));
    let (_, html) = open(&app, &admin, "/ui/admin/clients").await;
    let form = [("csrf", field(&html, "csrf")), ("action", "create".into()), ("name", "late".into())];
    let r = admin.post(app.url("/ui/admin/clients")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = act(&app, &admin, &page, "disable", "").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.unwrap();
    let again = format!("&#x2f;ui&#x2f;login?lang=en&amp;rd=%2Fui%2Fadmin%2Fusers%2F{id}");
    assert!(html.contains(&again), "{html}");
    assert_eq!(app.status_of_me(&zed.access).await, StatusCode::OK);
    // Signing in again with that rd lands back on the user's page.
    let login = format!("/ui/login?lang=en&rd=%2Fui%2Fadmin%2Fusers%2F{id}");
    let html = admin.get(app.url(&login)).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", field(&html, "csrf")),
        ("login", "root@example.com".to_owned()),
        ("password", PASSWORD.to_owned()),
        ("rd", page.clone()),
    ];
    let r = admin.post(app.url("/ui/login")).form(&form).send().await.unwrap();
    assert_eq!((r.status(), r.headers()["location"].to_str().unwrap()), (StatusCode::SEE_OTHER, page.as_str()));
    assert_eq!(act(&app, &admin, &page, "disable", "").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.status_of_me(&zed.access).await, StatusCode::UNAUTHORIZED);
    // rd leads only to authd's own pages.
    for rd in [
        "//evil.test/ui/admin",
        "/ui/admin/../../evil",
        "https://evil.test/",
        "/ui/admin/%2e%2e/%2e%2e/oauth2/authorize",
        "/ui/admin\\evil.test",
        "/ui/admin/%2F%2Fevil.test",
    ] {
        let html = admin.get(app.url("/ui/login")).send().await.unwrap().text().await.unwrap();
        let form = [
            ("csrf", field(&html, "csrf")),
            ("login", "root@example.com".to_owned()),
            ("password", PASSWORD.to_owned()),
            ("rd", rd.to_owned()),
        ];
        let r = admin.post(app.url("/ui/login")).form(&form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{rd}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_for_admins_and_can_be_off() {
    let app = TestApp::spawn().await;
    app.register("amy@example.com").await;
    let b = browser();
    console_sign_in(&app, &b, "amy@example.com").await;
    let (s, html) = open(&app, &b, "/ui/admin").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(html.contains("no administrative permission"), "{html}");

    // The overview's count on the shared database too.
    if let Some(pg) = TestApp::spawn_on_postgres(|_| {}).await {
        pg.admin("root@example.com").await;
        pg.register("amy@example.com").await;
        let b = browser();
        console_sign_in(&pg, &b, "root@example.com").await;
        let (s, html) = open(&pg, &b, "/ui/admin").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains(r#"<strong id="user-count">2</strong>"#), "{html}");
    }

    // On a listener of its own, the console is there only; signing in works on either.
    let port = crate::support::free_port();
    let own =
        TestApp::spawn_with(|c| c.admin.console_bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))).await;
    own.admin("root@example.com").await;
    let at = own.console_addr.expect("the console's listener");
    let b = browser();
    console_sign_in(&own, &b, "root@example.com").await;
    assert_eq!(open(&own, &b, "/ui/admin").await.0, StatusCode::NOT_FOUND);
    assert_eq!(open(&own, &b, "/ui/admin/users").await.0, StatusCode::NOT_FOUND);
    // Posting there says no more: not there, before any token is looked at.
    let r = b.post(own.url("/ui/admin/users")).form(&[("csrf", "x"), ("email", "n@example.com")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = b.get(format!("http://{at}/ui/admin/users")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("root@example.com"));

    let off = TestApp::spawn_with(|c| c.admin.console = false).await;
    off.admin("root@example.com").await;
    let b = browser();
    console_sign_in(&off, &b, "root@example.com").await;
    assert_eq!(open(&off, &b, "/ui/admin").await.0, StatusCode::NOT_FOUND);
    assert_eq!(open(&off, &b, "/ui/admin/users").await.0, StatusCode::NOT_FOUND);
}

/// The client id and secret the page shows once.
fn shown_secret(html: &str) -> (String, String) {
    let re =
        regex::Regex::new(r#"<code id="client-id">([^<]+)</code> <code id="client-secret">([^<]+)</code>"#).unwrap();
    let c = re.captures(html).unwrap_or_else(|| panic!("no secret shown: {html}"));
    (c[1].to_owned(), c[2].to_owned())
}

async fn client_token(app: &TestApp, id: &str, secret: &str) -> StatusCode {
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    app.http.post(app.url("/v1/token")).form(&form).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_clients_and_roles_and_a_secret_is_shown_once() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let b = browser();
    console_sign_in(&app, &b, "root@example.com").await;
    let post = async |path: &str, form: &[(&str, &str)]| {
        let (_, html) = open(&app, &b, path).await;
        let csrf = field(&html, "csrf");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(form);
        b.post(app.url(path)).form(&all).send().await.unwrap()
    };

    // A backend: created, its secret shown once and working; never shown again.
    let r = post("/ui/admin/clients", &[("action", "create"), ("name", "billing"), ("roles", "user")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (id, secret) = shown_secret(&r.text().await.unwrap());
    assert_eq!(client_token(&app, &id, &secret).await, StatusCode::OK);
    let (_, html) = open(&app, &b, "/ui/admin/clients").await;
    assert!(html.contains("billing") && !html.contains(&secret), "{html}");
    // A new secret: the old one stops working.
    let r = post("/ui/admin/clients", &[("action", "rotate"), ("id", &id)]).await;
    let (_, fresh) = shown_secret(&r.text().await.unwrap());
    assert_eq!(client_token(&app, &id, &secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(client_token(&app, &id, &fresh).await, StatusCode::OK);

    // A relying party's redirect URIs edited in place; a bad one refused with nothing changed.
    let r = post(
        "/ui/admin/clients",
        &[("action", "create"), ("name", "photos"), ("redirect_uris", "https://photos.example/cb"), ("public", "on")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "a public client has no secret to show");
    let clients: Value = app.get_auth("/v1/admin/clients", &root.access).await.json().await.unwrap();
    let photos = clients.as_array().unwrap().iter().find(|c| c["name"] == "photos").unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let edit = [
        ("action", "edit"),
        ("id", photos.as_str()),
        ("redirect_uris", "https://photos.example/cb\nhttps://photos.example/cb2"),
    ];
    assert_eq!(post("/ui/admin/clients", &edit).await.status(), StatusCode::SEE_OTHER);
    let bad = [("action", "edit"), ("id", photos.as_str()), ("redirect_uris", "javascript:alert(1)")];
    assert_eq!(post("/ui/admin/clients", &bad).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let shown: Value = app.get_auth(&format!("/v1/admin/clients/{photos}"), &root.access).await.json().await.unwrap();
    assert_eq!(shown["redirect_uris"], json!(["https://photos.example/cb", "https://photos.example/cb2"]));
    // Deleted: its tokens are refused at once.
    assert_eq!(post("/ui/admin/clients", &[("action", "delete"), ("id", &id)]).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(client_token(&app, &id, &fresh).await, StatusCode::UNAUTHORIZED);

    // A role: created, given a permission, made to require a second factor, its holders listed.
    let r = post("/ui/admin/roles", &[("action", "create"), ("name", "helpdesk"), ("permission", "users:read")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        post("/ui/admin/roles", &[("action", "grant"), ("name", "helpdesk"), ("permission", "audit:read")])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post("/ui/admin/roles", &[("action", "require_mfa"), ("name", "helpdesk")]).await.status(),
        StatusCode::SEE_OTHER
    );
    let roles: Value = app.get_auth("/v1/admin/roles", &root.access).await.json().await.unwrap();
    let helpdesk = roles.as_array().unwrap().iter().find(|r| r["name"] == "helpdesk").unwrap().clone();
    assert_eq!(
        (helpdesk["permissions"].clone(), helpdesk["require_mfa"].clone()),
        (json!(["audit:read", "users:read"]), json!(true))
    );
    let (_, html) = open(&app, &b, "/ui/admin/roles").await;
    assert!(html.contains("role=helpdesk"), "{html}");
    // A built-in role cannot be deleted: refused, and said why.
    let r = post("/ui/admin/roles", &[("action", "delete"), ("name", "user")]).await;
    assert!(r.status().is_client_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_webhook_delivery_is_seen_and_sent_again() {
    let (url, rx) = crate::webhooks::start_receiver().await;
    let app = TestApp::spawn_with(|c| c.webhook_delivery.retry_for = HumanDuration::secs(1)).await;
    app.admin("root@example.com").await;
    let b = browser();
    console_sign_in(&app, &b, "root@example.com").await;
    let (_, html) = open(&app, &b, "/ui/admin/webhooks").await;
    // A secret is generated when none is given, and shown once.
    let add = |url: &str, secret: &str, html: &str| {
        [
            ("csrf", field(html, "csrf")),
            ("action", "add".into()),
            ("url", url.to_owned()),
            ("events", "user.registered".into()),
            ("secret", secret.to_owned()),
        ]
    };
    let r =
        b.post(app.url("/ui/admin/webhooks")).form(&add("https://hooks.example/x", "", &html)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"webhook-secret\">whsec_"), "{html}");
    let re =
        regex::Regex::new(r#"name="action" value="delete">\s*<input type="hidden" name="id" value="([^"]+)""#).unwrap();
    let generated = re.captures(&html).unwrap_or_else(|| panic!("no delete: {html}"))[1].to_owned();
    let form = [("csrf", field(&html, "csrf")), ("action", "delete".into()), ("id", generated)];
    assert_eq!(b.post(app.url("/ui/admin/webhooks")).form(&form).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    // The receiver's own secret.
    use base64::Engine as _;
    let (_, html) = open(&app, &b, "/ui/admin/webhooks").await;
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(crate::webhooks::SECRET_KEY));
    let r = b.post(app.url("/ui/admin/webhooks")).form(&add(&url, &secret, &html)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // The receiver is down: the delivery fails for good, and the page shows it with a retry.
    app.register("new@example.com").await;
    let mut html = String::new();
    for _ in 0..60 {
        html = open(&app, &b, "/ui/admin/webhooks").await.1;
        if html.contains("failed: 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(html.contains("failed: 1") && html.contains("user.registered"), "{html}");
    let re =
        regex::Regex::new(r#"name="action" value="retry">\s*<input type="hidden" name="id" value="([^"]+)""#).unwrap();
    let id = re.captures(&html).unwrap_or_else(|| panic!("no retry: {html}"))[1].to_owned();

    // Up again, and sent again: delivered.
    rx.up.store(true, std::sync::atomic::Ordering::SeqCst);
    let form = [("csrf", field(&html, "csrf")), ("action", "retry".into()), ("id", id.clone())];
    assert_eq!(b.post(app.url("/ui/admin/webhooks")).form(&form).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    for _ in 0..60 {
        html = open(&app, &b, "/ui/admin/webhooks").await.1;
        if html.contains("delivered: 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(html.contains("delivered: 1, failed: 0"), "{html}");
    // The newest deliveries, delivered ones too, with their state.
    assert!(html.contains("<td>user.registered</td><td>1</td><td>delivered</td>"), "{html}");
    // Only a failed delivery is sent again.
    let form = [("csrf", field(&html, "csrf")), ("action", "retry".into()), ("id", id)];
    assert_eq!(
        b.post(app.url("/ui/admin/webhooks")).form(&form).send().await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

/// Signs an administrator in at a new browser and opens the audit page: the browser, the page,
/// and the id its live tail starts after.
async fn audit_page(app: &TestApp) -> (Client, String, String) {
    app.admin("root@example.com").await;
    let b = browser();
    console_sign_in(app, &b, "root@example.com").await;
    let (_, html) = open(app, &b, "/ui/admin/audit").await;
    let re = regex::Regex::new(r#"id="audit-tail" data-after="([^"]+)""#).unwrap();
    let after = re.captures(&html).unwrap_or_else(|| panic!("no tail: {html}"))[1].to_owned();
    (b, html, after)
}

/// A console session holds a few live tails at once: a newer one ends the oldest (a reload is
/// never refused). A burst of more than a page arrives whole, in order, and a browser that
/// reconnects with Last-Event-ID gets only what came after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_a_few_live_tails_and_a_burst_arrives_whole() {
    let app = TestApp::spawn().await;
    let (b, _, after) = audit_page(&app).await;
    let url = app.url(&format!("/ui/admin/audit/stream?after={after}"));
    let mut tails = Vec::new();
    for _ in 0..4 {
        let r = b.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        tails.push(r);
    }
    let mut tail = b.get(&url).send().await.unwrap();
    assert_eq!(tail.status(), StatusCode::OK, "a fifth is served");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Ok(Some(_)) = tails[0].chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the oldest tail ended");

    // 120 sign-ups, 20 at a time (the node takes 100 connections per address): more than two
    // pages of the tail.
    let emails: Vec<String> = (0..120).map(|n| format!("burst{n:03}@example.com")).collect();
    for batch in emails.chunks(20) {
        futures_util::future::join_all(batch.iter().map(|e| app.register(e))).await;
    }
    let mut read = Reader::default();
    let mut users = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while users.len() < 120 {
        assert!(std::time::Instant::now() < deadline, "{} sign-ups seen: {users:?}", users.len());
        for (_, rows) in read.next(&mut tail).await {
            assert!(rows.len() <= 50, "a page at a time");
            users.extend(rows.iter().filter(|r| r["event"] == "user.registered").map(|r| r["user"].to_string()));
        }
    }
    let unique: std::collections::HashSet<_> = users.iter().collect();
    assert_eq!((users.len(), unique.len()), (120, 120), "every sign-up once");

    // Reconnecting from the last event it got: only what is new.
    drop(tail);
    let last = read.last_id.clone().unwrap();
    let mut again = b.get(&url).header("Last-Event-ID", &last).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    app.register("after.reconnect@example.com").await;
    let mut read = Reader::default();
    let (_, rows) = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if let Some(event) = read.next(&mut again).await.into_iter().next() {
                return event;
            }
        }
    })
    .await
    .expect("the new sign-up is sent");
    assert_eq!(rows.len(), 1, "only the new event, no replay: {rows:?}");
    assert_eq!(rows[0]["event"], "user.registered");
}

/// Reads server-sent events from a response: each whole event's id and rows.
#[derive(Default)]
struct Reader {
    text: String,
    last_id: Option<String>,
}

impl Reader {
    async fn next(&mut self, r: &mut Response) -> Vec<(String, Vec<Value>)> {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), r.chunk())
            .await
            .expect("the tail sends on")
            .unwrap()
            .expect("the stream goes on");
        self.text.push_str(&String::from_utf8_lossy(&chunk));
        let mut out = Vec::new();
        while let Some(end) = self.text.find("\n\n") {
            let event: String = self.text.drain(..end + 2).collect();
            let id = event.lines().find_map(|l| l.strip_prefix("id: ")).map(str::to_owned);
            if let (Some(id), Some(data)) = (id, event.lines().find_map(|l| l.strip_prefix("data: "))) {
                self.last_id = Some(id.clone());
                out.push((id, serde_json::from_str(data).unwrap()));
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_streams_new_events_until_the_viewer_signs_out() {
    let app = TestApp::spawn().await;
    let (b, html, after) = audit_page(&app).await;
    assert!(html.contains("<script>"), "the page's one script follows the tail");
    // A filtered page offers no tail.
    assert!(!open(&app, &b, "/ui/admin/audit?event=user").await.1.contains("audit-tail"));

    let mut r = b.get(app.url(&format!("/ui/admin/audit/stream?after={after}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    app.register("late@example.com").await;
    let mut got = String::new();
    while !got.contains("user.registered") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk()).await.unwrap().unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on")));
    }
    // The row as the table shows it: the user by id, nothing of the event's details.
    assert!(got.contains("event: audit") && !got.contains("late@example.com"), "{got}");

    // Signed out: the stream ends.
    let html = b.get(app.url("/ui/logout")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", field(&html, "csrf")), ("decision", "logout".to_owned())];
    assert_eq!(b.post(app.url("/ui/logout")).form(&form).send().await.unwrap().status(), StatusCode::OK);
    let ended =
        tokio::time::timeout(std::time::Duration::from_secs(10), async { while let Ok(Some(_)) = r.chunk().await {} })
            .await;
    assert!(ended.is_ok(), "the stream outlived the session");
    // Without audit:read, or without a valid cursor: refused.
    let b = browser();
    console_sign_in(&app, &b, "root@example.com").await;
    assert_eq!(
        b.get(app.url("/ui/admin/audit/stream?after=nope")).send().await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
