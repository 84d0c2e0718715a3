//! The hosted pages in a real headless Chromium, driven over WebDriver (chromedriver): the
//! link from the real mail is opened, the form filled in with the keyboard, and the new password
//! then signs in through the API.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Browser, MailSink, PASSWORD, TestApp, assert_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailed_reset_link_works_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        sink.configure(c);
        c.verification.email = authd::config::VerifyMode::Optional;
    })
    .await;
    app.register("uma@example.com").await;

    // Confirming the address: the link opens a page with one button (a GET changes nothing, so
    // link scanners cannot spend it).
    let confirm = sink.first_to("uma@example.com").await.link("http://");
    browser.open(&format!("{confirm}&lang=ru")).await;
    browser.heading_becomes("Подтверждение адреса").await;
    // The style is allowed by its hash under the strict CSP.
    assert_eq!(browser.css("body", "max-width").await, "512px");
    browser.click("button[type=submit]").await;
    browser.heading_becomes("Адрес подтверждён").await;

    // Forgot → mail → the reset page → a mismatch is told in words → the new password.
    assert_eq!(
        app.post("/v1/auth/password/forgot", &json!({"login": "uma@example.com"})).await.status(),
        StatusCode::ACCEPTED
    );
    let link = sink.nth_to("uma@example.com", 2).await.link("http://");
    browser.open(&link).await;
    browser.heading_becomes("Choose a new password").await;
    assert_eq!(browser.text("label[for=password]").await, "New password");
    browser.type_into("#password", "a fresh passphrase, well chosen").await;
    browser.type_into("#password_again", "a different passphrase\u{E007}").await;
    browser.heading_becomes("Choose a new password").await;
    assert!(browser.text("[role=alert]").await.contains("differ"));
    browser.type_into("#password", "a fresh passphrase, well chosen").await;
    // Enter in the last field submits: the keyboard is enough.
    browser.type_into("#password_again", "a fresh passphrase, well chosen\u{E007}").await;
    browser.heading_becomes("Password changed").await;

    app.login("uma@example.com", "a fresh passphrase, well chosen").await;
    assert_problem(
        app.post("/v1/auth/login", &json!({"login": "uma@example.com", "password": PASSWORD})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // The same link again: spent.
    browser.open(&link).await;
    browser.type_into("#password", "yet another passphrase!").await;
    browser.type_into("#password_again", "yet another passphrase!\u{E007}").await;
    browser.heading_becomes("That did not work").await;
}

#[tokio::test]
async fn the_pages_refuse_a_form_without_its_csrf_cookie() {
    let app = TestApp::spawn().await;
    let page = app.http.get(app.url("/ui/reset?token=abc")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'; style-src 'sha256-") && csp.contains("form-action 'self'"), "{csp}");
    assert!(page.headers()["set-cookie"].to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script"));
    let csrf = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap().captures(&html).unwrap()[1].to_owned();
    // A forged form from elsewhere has no cookie to match.
    let r = app
        .http
        .post(app.url("/ui/reset"))
        .form(&[("token", "abc"), ("csrf", csrf.as_str()), ("password", "x"), ("password_again", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
