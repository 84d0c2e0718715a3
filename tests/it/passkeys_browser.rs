//! Passkeys in a real Chromium, with its virtual authenticator (the WebDriver WebAuthn
//! extension): a recovery link enrols a passkey, the hosted login signs in with it and no name,
//! through an OpenID application too; a second device; an authenticator that cannot verify its
//! user is refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    passkeys::passkey_app,
    provider_browser::{application_receiver, authorize_url, new_client},
    support::{Browser, PASSWORD, TestApp, Tokens, claims_of},
};

/// A single-use recovery link for `login`, as `authd user recovery-link` makes it.
async fn recovery_link(app: &TestApp, login: &str) -> String {
    let (_, link) =
        app.svc().recovery.recovery_link(&authd::service::Principal::Operator, login).await.expect("recovery link");
    link
}

/// Opens a recovery link and adds a passkey with the browser's authenticator.
async fn enrol_through(chromium: &Browser, link: &str) {
    chromium.open(link).await;
    assert!(chromium.text("main").await.contains("@example.com"), "the page names the account");
    chromium.shown("#recover-button").await;
    chromium.click("#recover-button").await;
    chromium.shown("#recover-done").await;
}

async fn passkeys_of(app: &TestApp, login: &str) -> Vec<Value> {
    let t = Tokens::from(&app.login(login, PASSWORD).await);
    let r = app.get_auth("/v1/me/passkeys", &t.access).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_passkey_is_enrolled_and_signs_in_without_a_name() {
    let Some(chromium) = Browser::start().await else { return };
    let app = passkey_app(|_| {}).await;
    let base = app.cfg.server.public_url.clone().unwrap();
    app.register("kim@example.com").await;
    let phone = chromium.add_authenticator(true).await;

    // A recovery link enrols the first passkey.
    enrol_through(&chromium, &recovery_link(&app, "kim@example.com").await).await;
    assert_eq!(chromium.credentials(&phone).await.len(), 1);
    let stored = passkeys_of(&app, "kim@example.com").await;
    assert_eq!(stored.len(), 1);
    // A link works once: spent elsewhere, the page says so.
    let link = recovery_link(&app, "kim@example.com").await;
    let token = url::Url::parse(&link).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
    assert_eq!(app.post("/v1/auth/recover/finish", &json!({"token": token})).await.status(), StatusCode::OK);
    chromium.open(&link).await;
    assert_eq!(chromium.text("p[role=alert]").await, "This link is wrong or was already used.");
    assert_eq!(chromium.credentials(&phone).await.len(), 1);

    // The hosted login offers the passkey in the login field's autofill (conditional
    // mediation): the virtual authenticator answers as a user picking it there would, and
    // nothing is typed.
    chromium.open(&format!("{base}/ui/login")).await;
    chromium.heading_becomes("Signed in").await;
    // The button: while the authenticator cannot verify its user the autofill request fails
    // quietly; once it can, the button signs in.
    chromium.set_user_verified(&phone, false).await;
    chromium.open(&format!("{base}/ui/login")).await;
    chromium.shown("#passkey-button").await;
    chromium.click("#passkey-button").await;
    chromium.shown("#passkey-problem").await;
    chromium.set_user_verified(&phone, true).await;
    chromium.click("#passkey-button").await;
    chromium.heading_becomes("Signed in").await;

    // An OpenID application's sign-in goes through the same way, and its ID token says two
    // factors.
    let admin = app.admin("ops@example.com").await;
    let (receiver, arrivals) = application_receiver().await;
    let redirect_uri = format!("http://{receiver}/callback");
    let (client_id, client_secret) =
        new_client(&app, &admin.access, json!({"name": "Photos", "redirect_uris": [redirect_uri], "trusted": true}))
            .await;
    // prompt=login: signed in or not, the login page comes.
    let link = authorize_url(&app, &client_id, &redirect_uri, &[("prompt", "login")]).replace(&app.url(""), &base);
    chromium.open(&link).await;
    chromium.heading_becomes("Back at Photos").await;
    let arrived = arrivals.lock().unwrap().clone();
    let back = format!("{redirect_uri}?{}", arrived.last().unwrap());
    let code = crate::support::oidc::param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let r = app
        .http
        .post(app.url("/v1/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", crate::support::oidc::VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "2", "{id}");
    assert!(id["amr"].as_array().is_some_and(|a| a.contains(&json!("hwk"))), "{id}");

    // A second device: the first is gone, the second enrols through another link and signs in.
    chromium.remove_authenticator(&phone).await;
    let laptop = chromium.add_authenticator(true).await;
    enrol_through(&chromium, &recovery_link(&app, "kim@example.com").await).await;
    assert_eq!(chromium.credentials(&laptop).await.len(), 1);
    chromium.open(&format!("{base}/ui/login")).await;
    chromium.heading_becomes("Signed in").await;
    assert_eq!(passkeys_of(&app, "kim@example.com").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_an_authenticator_that_cannot_verify_its_user_is_refused() {
    let Some(chromium) = Browser::start().await else { return };
    let app = passkey_app(|_| {}).await;
    let base = app.cfg.server.public_url.clone().unwrap();
    app.register("ned@example.com").await;
    let key = chromium.add_authenticator(false).await;
    // Enrolment asks for user verification; this key cannot give it.
    chromium.open(&recovery_link(&app, "ned@example.com").await).await;
    chromium.click("#recover-button").await;
    chromium.shown("#recover-failed").await;
    assert!(chromium.credentials(&key).await.is_empty());
    assert!(passkeys_of(&app, "ned@example.com").await.is_empty());
    // Nor does it sign in.
    chromium.open(&format!("{base}/ui/login")).await;
    chromium.click("#passkey-button").await;
    chromium.shown("#passkey-problem").await;
    assert_eq!(chromium.text("h1").await, "Sign in");
}

// ---- The account page, by keyboard, with axe-core ----

/// Every serious or critical accessibility violation on the page shown.
async fn assert_accessible(chromium: &Browser, page: &str) {
    if let Some(found) = chromium.serious_violations().await {
        assert!(found.is_empty(), "{page}: {}", serde_json::to_string_pretty(&found).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_the_account_page_works_by_keyboard_and_passes_axe() {
    let Some(chromium) = Browser::start().await else { return };
    let app = passkey_app(|_| {}).await;
    let base = app.cfg.server.public_url.clone().unwrap();
    app.register("kay@example.com").await;
    let phone = chromium.add_authenticator(true).await;

    // Sign in on the hosted form: the login, Tab, the password, Enter.
    chromium.open(&format!("{base}/ui/login")).await;
    assert_accessible(&chromium, "login").await;
    chromium.type_into("input[name=login]", &format!("kay@example.com\u{E004}{PASSWORD}\u{E007}")).await;
    chromium.heading_becomes("Signed in").await;
    assert_accessible(&chromium, "signed in").await;
    // Enter on the account link.
    chromium.type_into("a[href^='/ui/account']", "\u{E007}").await;
    chromium.heading_becomes("Your account").await;
    assert_accessible(&chromium, "account").await;

    // Enter on "Add a passkey": the authenticator makes one; its recovery codes are shown once.
    chromium.shown("#add-passkey").await;
    chromium.type_into("#add-passkey", "\u{E007}").await;
    chromium.shown("#new-codes").await;
    let codes = chromium.run("return document.querySelectorAll('#new-codes-list li').length;").await;
    assert_eq!(codes, json!(10));
    assert_accessible(&chromium, "account with recovery codes").await;

    // Rename it: clear the field, type, Enter.
    chromium.open(&format!("{base}/ui/account")).await;
    chromium.clear("#passkey-name-1").await;
    chromium.type_into("#passkey-name-1", "Kay's phone\u{E007}").await;
    chromium.shown("p[role=status]").await;
    assert!(chromium.text("#passkeys").await.contains("Kay's phone"));

    // A second device's passkey (Chromium holds one built-in authenticator at a time), then
    // the first removed with Enter on its button.
    chromium.remove_authenticator(&phone).await;
    chromium.add_authenticator(true).await;
    chromium.type_into("#add-passkey", "\u{E007}").await;
    // The page reloads once the passkey is in; the status of the rename above may still show
    // until then, so wait for the list itself.
    let mut listed = json!(0);
    for _ in 0..100 {
        listed = chromium.run("return document.querySelectorAll('#passkeys li').length;").await;
        if listed == json!(2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(listed, json!(2));
    chromium.type_into("button[aria-label=\"Remove: Kay's phone\"]", "\u{E007}").await;
    for _ in 0..100 {
        if chromium.run("return document.querySelectorAll('#passkeys li').length;").await == json!(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(chromium.run("return document.querySelectorAll('#passkeys li').length;").await, json!(1));
    assert!(!chromium.text("#passkeys").await.contains("Kay's phone"));

    // Another session, ended with Enter on its button.
    let other = Tokens::from(&app.login("kay@example.com", PASSWORD).await);
    chromium.open(&format!("{base}/ui/account")).await;
    chromium.type_into("button[aria-label^='End']", "\u{E007}").await;
    chromium.shown("p[role=status]").await;
    assert_eq!(app.refresh(&other.refresh).await.status(), StatusCode::UNAUTHORIZED);

    // TOTP: the secret and QR code, in a page that passes axe too.
    chromium.type_into("input[value=totp_begin] ~ button", "\u{E007}").await;
    chromium.shown("#totp-secret").await;
    assert_accessible(&chromium, "account with a TOTP enrolment").await;
    chromium.open(&format!("{base}/ui/account?lang=ru")).await;
    let heading = chromium.text("html[lang=ru] h1").await;
    assert!(heading.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c)), "not Russian: {heading:?}");
    assert_accessible(&chromium, "account in Russian").await;

    // The recovery page too.
    chromium.open(&recovery_link(&app, "kay@example.com").await).await;
    assert_accessible(&chromium, "recover").await;
    // And the passkey signs in from the login page's autofill.
    chromium.open(&format!("{base}/ui/login")).await;
    chromium.heading_becomes("Signed in").await;
}
