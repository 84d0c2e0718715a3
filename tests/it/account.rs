//! `/ui/account`, the user's own page, driven as a browser without JavaScript would (forms and
//! cookies), plus the two calls its passkey script makes: the same rules as the API, on the
//! hosted-login session.

use std::time::Duration;

use authd::config::{Config, HumanDuration};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::{
    passkeys::passkey_app,
    support::{Authenticator, PASSWORD, TestApp, Tokens, oidc::browser},
};

fn csrf_of(html: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap();
    re.captures(html).unwrap_or_else(|| panic!("no csrf in {html}"))[1].to_owned()
}

/// Signs `who` in through the hosted login form in browser `b`.
async fn hosted_sign_in(app: &TestApp, b: &Client, who: &str, password: &str) {
    let html = b.get(app.url("/ui/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&html)), ("login", who.to_owned()), ("password", password.to_owned())];
    let r = b.post(app.url("/ui/login")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("href=\"/ui/account?lang=en\""), "the signed-in page links the account page: {html}");
}

async fn account(app: &TestApp, b: &Client) -> String {
    let r = b.get(app.url("/ui/account")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

/// Posts one change from the page; the answer's status and page (following a redirect back).
async fn change(app: &TestApp, b: &Client, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let csrf = csrf_of(&account(app, b).await);
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf), ("lang", "en")];
    form.extend_from_slice(fields);
    let r = b.post(app.url("/ui/account")).form(&form).send().await.unwrap();
    let status = r.status();
    if status == StatusCode::SEE_OTHER {
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with("/ui/account?"), "{to}");
        return (status, b.get(app.url(&to)).send().await.unwrap().text().await.unwrap());
    }
    (status, r.text().await.unwrap())
}

fn totp_now(secret_b32: &str) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).unwrap();
    let t = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret)
        .build()
        .unwrap();
    t.generate_current().to_string()
}

async fn account_story(app: &TestApp) {
    app.register("ann@example.com").await;
    let b = browser();
    // Not signed in: to the login.
    let r = b.get(app.url("/ui/account")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    hosted_sign_in(app, &b, "ann@example.com", PASSWORD).await;
    let page = account(app, &b).await;
    assert!(page.contains("ann@example.com") && page.contains("(this browser)"), "{page}");
    assert!(page.contains("user.registered"), "recent security events: {page}");

    // A name to go by: on the page, in the API, and as the OpenID `name` claim's source.
    let (status, page) =
        change(app, &b, &[("action", "profile"), ("display_name", "Ann Example"), ("email", "ann@example.com")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(page.contains("value=\"Ann Example\""), "{page}");
    let api = Tokens::from(&app.login("ann@example.com", PASSWORD).await);
    let me: Value = app.get_auth("/v1/me", &api.access).await.json().await.unwrap();
    assert_eq!(me["name"], "Ann Example");
    let (status, _) = change(app, &b, &[("action", "profile"), ("display_name", "bad\u{7}name")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Another session, from the API; ended from the page.
    let other = Tokens::from(&app.login("ann@example.com", PASSWORD).await);
    // A change without the CSRF token changes nothing.
    let r = b.post(app.url("/ui/account")).form(&[("action", "end_others")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.refresh(&other.refresh).await.status(), StatusCode::OK);
    let other = Tokens::from(&app.login("ann@example.com", PASSWORD).await);
    let (status, page) = change(app, &b, &[("action", "end_others")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(page.contains("Done."), "{page}");
    assert_eq!(app.refresh(&other.refresh).await.status(), StatusCode::UNAUTHORIZED);
    assert!(account(app, &b).await.contains("(this browser)"), "the page's own session stays");

    // A passkey through the two calls of the page's script.
    let csrf = csrf_of(&account(app, &b).await);
    let r = b.post(app.url("/ui/account/passkey")).json(&json!({"csrf": "wrong"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b.post(app.url("/ui/account/passkey")).json(&json!({"csrf": csrf})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let start: Value = r.json().await.unwrap();
    let mut device = Authenticator::new(app.cfg.server.public_url.as_deref().unwrap());
    let credential = device.create(&start["public_key"]).unwrap();
    let r = b
        .post(app.url("/ui/account/passkey/finish"))
        .json(&json!({"csrf": csrf, "ceremony": start["ceremony"], "credential": credential}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let added: Value = r.json().await.unwrap();
    assert_eq!(added["recovery_codes"].as_array().unwrap().len(), 10);
    let id = added["id"].as_str().unwrap().to_owned();
    let (status, page) = change(app, &b, &[("action", "passkey_rename"), ("id", &id), ("name", "Work laptop")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(page.contains("Work laptop"), "{page}");
    let (status, page) = change(app, &b, &[("action", "passkey_rename"), ("id", &id), ("name", "  ")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Work laptop"), "nothing changed: {page}");

    // Password: a wrong current one is refused; the right one changes it.
    let (status, page) =
        change(app, &b, &[("action", "password"), ("current_password", "not it"), ("new_password", "x")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("The current password is wrong."), "{page}");
    let new = "a brand new passphrase";
    let (status, _) =
        change(app, &b, &[("action", "password"), ("current_password", PASSWORD), ("new_password", new)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.login("ann@example.com", new).await;

    // TOTP: the secret shown once, a code turns it on, the recovery codes shown once.
    let (status, page) = change(app, &b, &[("action", "totp_begin")]).await;
    assert_eq!(status, StatusCode::OK);
    let re = regex::Regex::new(r#"<code id="totp-secret">([A-Z2-7]+)</code>"#).unwrap();
    let secret = re.captures(&page).unwrap_or_else(|| panic!("no secret: {page}"))[1].to_owned();
    assert!(page.contains("<svg"), "the QR code: {page}");
    let (status, page) = change(app, &b, &[("action", "totp_confirm"), ("code", &totp_now(&secret))]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page.matches("<li><code>").count(), 10, "{page}");
    let r = app.post("/v1/auth/login", &json!({"login": "ann@example.com", "password": new})).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the factor is on: the login asks for a code");

    // Remove the passkey; an unknown action or id changes nothing.
    let (status, _) = change(app, &b, &[("action", "passkey_remove"), ("id", &id)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!account(app, &b).await.contains("Work laptop"));
    let (status, _) = change(app, &b, &[("action", "passkey_remove"), ("id", "nope")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = change(app, &b, &[("action", "explode")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_manages_every_way_in_without_javascript() {
    let app = passkey_app(|_| {}).await;
    account_story(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_works_on_postgres() {
    let Some(db) = crate::support::postgres_db().await else { return };
    let app = passkey_app(|c: &mut Config| crate::support::use_postgres(c, &db)).await;
    account_story(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_asks_for_a_recent_sign_in_as_the_api_does() {
    let app = passkey_app(|c| c.security.step_up_window = HumanDuration::secs(5)).await;
    app.register("bo@example.com").await;
    let b = browser();
    hosted_sign_in(&app, &b, "bo@example.com", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(6100)).await;
    let (status, page) = change(&app, &b, &[("action", "profile"), ("email", "bo2@example.com")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("For this change, sign in again first."), "{page}");
    assert!(page.contains("bo@example.com") && !page.contains("bo2@example.com"), "{page}");
    let csrf = csrf_of(&account(&app, &b).await);
    let r = b.post(app.url("/ui/account/passkey")).json(&json!({"csrf": csrf})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "step_up_required");
    // Signing in again opens the door.
    hosted_sign_in(&app, &b, "bo@example.com", PASSWORD).await;
    let (status, _) = change(&app, &b, &[("action", "profile"), ("phone", "+14155550123")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(account(&app, &b).await.contains("+14155550123"));
}

/// Follows redirects in browser `b` from `url` until one comes back to `/ui/account`.
async fn until_account(b: &Client, url: &str) -> String {
    let mut next = url.to_owned();
    for _ in 0..15 {
        let r = b.get(&next).send().await.unwrap();
        let Some(loc) = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned()) else {
            panic!("{next} answered {} without a redirect: {}", r.status(), r.text().await.unwrap());
        };
        let loc = url::Url::parse(&next).unwrap().join(&loc).unwrap().to_string();
        if loc.contains("/ui/account") {
            return loc;
        }
        next = loc;
    }
    panic!("too many redirects from {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_links_a_provider_account_and_unlinks_it() {
    use crate::support::oidc::{CLIENT_ID, CLIENT_SECRET, authd_with, op_config};
    let port = crate::support::free_port();
    let Some(op) = crate::support::RealOp::start(port, "op", CLIENT_ID, CLIENT_SECRET).await else { return };
    let app = authd_with(port, vec![("op", op_config(&op))], |_| {}).await;
    app.register("lin@example.com").await;
    let b = browser();
    hosted_sign_in(&app, &b, "lin@example.com", PASSWORD).await;
    assert!(account(&app, &b).await.contains(">Test OP</button>"));

    op.next(json!({"sub": "lin-at-op", "email": "lin.other@example.com", "email_verified": false})).await;
    let csrf = csrf_of(&account(&app, &b).await);
    let r = b
        .post(app.url("/ui/account"))
        .form(&[("csrf", csrf.as_str()), ("lang", "en"), ("action", "link"), ("id", "op")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let go = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(go.starts_with(&op.issuer), "{go}");
    let back = until_account(&b, &go).await;
    assert!(back.ends_with("/ui/account?linked=op"), "{back}");
    let page = b.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("The account was linked"), "{page}");
    assert!(page.contains("op (lin.other@example.com)"), "{page}");

    // Unlinked from the page: the password stays the way in.
    let re =
        regex::Regex::new(r#"name="action" value="unlink">\s*<input type="hidden" name="id" value="([^"]+)""#).unwrap();
    let id = re.captures(&page).unwrap_or_else(|| panic!("no unlink form: {page}"))[1].to_owned();
    let (status, page) = change(&app, &b, &[("action", "unlink"), ("id", &id)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!page.contains("lin.other@example.com"), "{page}");
    // An unknown provider is refused on the page.
    let (status, _) = change(&app, &b, &[("action", "link"), ("id", "nope")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
