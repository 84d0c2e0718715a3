//! Passkeys through the API, with a software authenticator that answers as a browser would:
//! enrol, sign in without a name, a second device, rename, remove; what a tampered, replayed,
//! unverified or cloned answer gets; passwordless sign-up; and the recovery ladder, rung by
//! rung, with the mail from a real SMTP server and the operator's link from the CLI.

use std::{net::SocketAddr, time::Duration};

use authd::config::{Config, HumanDuration, VerifyMode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    Authenticator, MailSink, PASSWORD, TestApp, Tokens, assert_problem, binary, call, claims_of, free_port,
};

/// A server whose public URL is `http://localhost:<port>`: a relying party needs a host name.
pub async fn passkey_app(tweak: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        on_localhost(c);
        tweak(c);
    })
    .await
}

fn on_localhost(c: &mut Config) {
    let port = free_port();
    c.server.bind = SocketAddr::from(([127, 0, 0, 1], port));
    c.server.public_url = Some(format!("http://localhost:{port}"));
}

fn origin(app: &TestApp) -> String {
    app.cfg.server.public_url.clone().unwrap()
}

/// Starts an enrolment as `bearer`: the ceremony and the creation options.
async fn begin(app: &TestApp, bearer: &str) -> (String, Value) {
    let r = app.post_auth("/v1/me/passkeys/register", bearer, &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK, "register begin");
    let v: Value = r.json().await.unwrap();
    (v["ceremony"].as_str().unwrap().to_owned(), v["public_key"].clone())
}

async fn finish(app: &TestApp, bearer: &str, ceremony: &str, credential: &Value, name: &str) -> reqwest::Response {
    app.post_auth(
        "/v1/me/passkeys/register/finish",
        bearer,
        &json!({"ceremony": ceremony, "credential": credential, "name": name}),
    )
    .await
}

/// Enrols a passkey of `device` as `bearer`; the stored passkey.
async fn enrol(app: &TestApp, bearer: &str, device: &mut Authenticator, name: &str) -> Value {
    let (ceremony, options) = begin(app, bearer).await;
    let credential = device.create(&options).unwrap();
    let r = finish(app, bearer, &ceremony, &credential, name).await;
    assert_eq!(r.status(), StatusCode::CREATED, "register finish");
    r.json().await.unwrap()
}

async fn sign_in_options(app: &TestApp) -> (String, Value) {
    let r = app.post("/v1/auth/passkey", &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    (v["ceremony"].as_str().unwrap().to_owned(), v["public_key"].clone())
}

async fn sign_in_with(app: &TestApp, ceremony: &str, assertion: &Value) -> reqwest::Response {
    app.post("/v1/auth/passkey/finish", &json!({"ceremony": ceremony, "credential": assertion, "device_name": "k"}))
        .await
}

/// Signs in with credential `which` of `device`.
async fn sign_in(app: &TestApp, device: &mut Authenticator, which: usize) -> reqwest::Response {
    let (ceremony, options) = sign_in_options(app).await;
    let assertion = device.get(&options, which);
    sign_in_with(app, &ceremony, &assertion).await
}

async fn signed_in_by_passkey(app: &TestApp, device: &mut Authenticator, which: usize) -> Tokens {
    let r = sign_in(app, device, which).await;
    assert_eq!(r.status(), StatusCode::OK, "passkey sign-in");
    Tokens::from(&r.json::<Value>().await.unwrap())
}

async fn list(app: &TestApp, access: &str) -> Vec<Value> {
    let r = app.get_auth("/v1/me/passkeys", access).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

async fn user_id(app: &TestApp, access: &str) -> String {
    app.get_auth("/v1/me", access).await.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

// ---- The main story ----

async fn passkey_story(app: &TestApp) {
    let tokens = app.signed_in("pia@example.com").await;
    let mut phone = Authenticator::new(&origin(app));
    let (ceremony, options) = begin(app, &tokens.access).await;
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["excludeCredentials"].as_array().map_or(0, Vec::len), 0);
    let user_handle = options["user"]["id"].as_str().unwrap().to_owned();
    assert!(!user_handle.contains("pia"), "the user handle is opaque, never the email");
    let credential = phone.create(&options).unwrap();
    let r = finish(app, &tokens.access, &ceremony, &credential, "Pia's phone").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["name"], "Pia's phone");
    assert_eq!(first["backed_up"], false);
    assert!(first["last_used_at"].is_null() && first["created_at"].is_string(), "{first}");
    let codes = first["recovery_codes"].as_array().expect("a first passkey brings recovery codes");
    assert_eq!(codes.len(), 10);

    // The same authenticator is offered the account's credentials to exclude, and refuses.
    let (_, options) = begin(app, &tokens.access).await;
    assert_eq!(options["excludeCredentials"].as_array().unwrap().len(), 1);
    assert!(phone.create(&options).is_err(), "an excluded credential is not made again");

    // Sign-in names no account; the authenticator picks it.
    let (ceremony, options) = sign_in_options(app).await;
    assert_eq!(options["userVerification"], "required");
    assert_eq!(options["allowCredentials"].as_array().unwrap().len(), 0);
    let r = sign_in_with(app, &ceremony, &phone.get(&options, 0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let by_phone = Tokens::from(&r.json::<Value>().await.unwrap());
    let claims = claims_of(&by_phone.access);
    assert_eq!(claims["amr"], json!(["pop", "hwk"]), "{claims}");
    assert_eq!(user_id(app, &by_phone.access).await, user_id(app, &tokens.access).await);
    assert_eq!(app.refresh(&by_phone.refresh).await.status(), StatusCode::OK);

    // A second device, a synced one.
    let mut laptop = Authenticator::new(&origin(app));
    laptop.backup_eligible = true;
    laptop.backed_up = true;
    laptop.counter_step = 0;
    let second = enrol(app, &tokens.access, &mut laptop, "Laptop").await;
    assert!(second.get("recovery_codes").is_none(), "codes come once");
    assert_eq!(second["backed_up"], true);
    for _ in 0..2 {
        // A synced passkey's count stays 0: that is fine.
        let t = signed_in_by_passkey(app, &mut laptop, 0).await;
        assert_eq!(claims_of(&t.access)["amr"], json!(["pop", "swk"]));
    }
    let items = list(app, &tokens.access).await;
    assert_eq!(items.len(), 2);
    assert!(items[0]["last_used_at"].is_string(), "{items:?}");

    // Rename, remove.
    let id = second["id"].as_str().unwrap();
    let r =
        call(app, &tokens.access, Method::PATCH, &format!("/v1/me/passkeys/{id}"), Some(json!({"name": "Work"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Work");
    let r =
        call(app, &tokens.access, Method::PATCH, &format!("/v1/me/passkeys/{id}"), Some(json!({"name": " "}))).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let r = call(app, &tokens.access, Method::DELETE, &format!("/v1/me/passkeys/{id}"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(list(app, &tokens.access).await.len(), 1);
    assert_problem(sign_in(app, &mut laptop, 0).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    // Another user cannot touch it.
    let other = app.signed_in("oscar@example.com").await;
    let first_id = first["id"].as_str().unwrap();
    let r = call(app, &other.access, Method::DELETE, &format!("/v1/me/passkeys/{first_id}"), None).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert!(list(app, &other.access).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_sign_in_without_a_name_a_second_device_rename_and_remove() {
    let app = passkey_app(|_| {}).await;
    passkey_story(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_passkey_story_holds_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(on_localhost).await else { return };
    passkey_story(&app).await;
}

// ---- What is refused ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_tampered_and_replayed_answers_are_refused() {
    let app = passkey_app(|_| {}).await;
    let tokens = app.signed_in("ria@example.com").await;
    let mut device = Authenticator::new(&origin(&app));

    // Enrolment: no user verification, another origin, another challenge.
    device.uv = false;
    let (ceremony, options) = begin(&app, &tokens.access).await;
    let credential = device.create(&options).unwrap();
    let p = assert_problem(
        finish(&app, &tokens.access, &ceremony, &credential, "x").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "passkey_rejected",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("verify its user"), "{p}");
    device.uv = true;
    let (ceremony, options) = begin(&app, &tokens.access).await;
    let credential = device.create_with(&options, Some("http://evil.localhost:1"), None).unwrap();
    assert_problem(
        finish(&app, &tokens.access, &ceremony, &credential, "x").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "passkey_rejected",
    )
    .await;
    let (ceremony, options) = begin(&app, &tokens.access).await;
    let credential = device.create_with(&options, None, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).unwrap();
    assert_problem(
        finish(&app, &tokens.access, &ceremony, &credential, "x").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "passkey_rejected",
    )
    .await;
    // A refused answer spent its ceremony; a good answer to it is refused as well.
    let good = device.create(&options).unwrap();
    assert_problem(
        finish(&app, &tokens.access, &ceremony, &good, "x").await,
        StatusCode::BAD_REQUEST,
        "invalid_ceremony",
    )
    .await;
    assert!(list(&app, &tokens.access).await.is_empty(), "nothing was stored");

    let mut device = Authenticator::new(&origin(&app));
    let (ceremony, options) = begin(&app, &tokens.access).await;
    let credential = device.create(&options).unwrap();
    assert_eq!(finish(&app, &tokens.access, &ceremony, &credential, "ok").await.status(), StatusCode::CREATED);
    // Replaying a finished ceremony.
    assert_problem(
        finish(&app, &tokens.access, &ceremony, &credential, "again").await,
        StatusCode::BAD_REQUEST,
        "invalid_ceremony",
    )
    .await;
    assert_eq!(list(&app, &tokens.access).await.len(), 1);

    // Sign-in: no user verification, another origin, another challenge, a replay.
    device.uv = false;
    assert_problem(sign_in(&app, &mut device, 0).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    device.uv = true;
    let (ceremony, options) = sign_in_options(&app).await;
    let a = device.get_with(&options, 0, Some("http://localhost:1"), None, None);
    assert_problem(sign_in_with(&app, &ceremony, &a).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    let (ceremony, options) = sign_in_options(&app).await;
    let a = device.get_with(&options, 0, None, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), None);
    assert_problem(sign_in_with(&app, &ceremony, &a).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    let (ceremony, options) = sign_in_options(&app).await;
    let a = device.get(&options, 0);
    assert_eq!(sign_in_with(&app, &ceremony, &a).await.status(), StatusCode::OK);
    assert_problem(sign_in_with(&app, &ceremony, &a).await, StatusCode::BAD_REQUEST, "invalid_ceremony").await;
    // A ceremony of one kind does not finish the other.
    let (ceremony, _) = sign_in_options(&app).await;
    assert_problem(
        finish(&app, &tokens.access, &ceremony, &credential, "x").await,
        StatusCode::BAD_REQUEST,
        "invalid_ceremony",
    )
    .await;
    // Not what toJSON() gives.
    let (ceremony, _) = sign_in_options(&app).await;
    assert_problem(
        sign_in_with(&app, &ceremony, &json!({"id": 3})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_of_one_user_never_signs_in_as_another() {
    let app = passkey_app(|_| {}).await;
    let admin = app.admin("root@example.com").await;
    let ann = app.signed_in("ann@example.com").await;
    let bob = app.signed_in("bob@example.com").await;
    let mut ann_key = Authenticator::new(&origin(&app));
    let mut bob_key = Authenticator::new(&origin(&app));
    enrol(&app, &ann.access, &mut ann_key, "ann").await;
    enrol(&app, &bob.access, &mut bob_key, "bob").await;
    let bob_handle = bob_key.credentials()[0].user_handle.clone();

    // Ann's credential presented with Bob's user handle.
    let (ceremony, options) = sign_in_options(&app).await;
    let forged = ann_key.get_with(&options, 0, None, None, Some(bob_handle));
    assert_problem(sign_in_with(&app, &ceremony, &forged).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    // Ann's signs in as Ann.
    let t = signed_in_by_passkey(&app, &mut ann_key, 0).await;
    assert_eq!(user_id(&app, &t.access).await, user_id(&app, &ann.access).await);

    // A clone whose count goes backwards is refused and audited; the original goes on.
    let mut clone = ann_key.clone_credential(0);
    signed_in_by_passkey(&app, &mut ann_key, 0).await;
    clone.set_counter(0, 0);
    assert_problem(sign_in(&app, &mut clone, 0).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    signed_in_by_passkey(&app, &mut ann_key, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app.get_auth("/v1/admin/audit?event=user.passkey_cloned", &admin.access).await;
    let events: Value = r.json().await.unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_needs_a_recent_sign_in_and_a_live_ceremony() {
    let app = passkey_app(|c| {
        c.security.step_up_window = HumanDuration::secs(5);
        c.passkeys.ceremony_ttl = HumanDuration::secs(1);
    })
    .await;
    let tokens = app.signed_in("sam@example.com").await;
    let mut device = Authenticator::new(&origin(&app));
    let (ceremony, options) = begin(&app, &tokens.access).await;
    tokio::time::sleep(Duration::from_millis(6100)).await;
    let credential = device.create(&options).unwrap();
    let fresh = Tokens::from(&app.login("sam@example.com", PASSWORD).await);
    // The ceremony outlived passkeys.ceremony_ttl.
    assert_problem(
        finish(&app, &fresh.access, &ceremony, &credential, "x").await,
        StatusCode::BAD_REQUEST,
        "invalid_ceremony",
    )
    .await;
    // A sign-in older than the step-up window cannot enrol.
    let r = app.post_auth("/v1/me/passkeys/register", &tokens.access, &json!({})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "step_up_required").await;
    // Nor finish what a fresh one began.
    let (ceremony, options) = begin(&app, &fresh.access).await;
    let credential = device.create(&options).unwrap();
    assert_problem(
        finish(&app, &tokens.access, &ceremony, &credential, "x").await,
        StatusCode::UNAUTHORIZED,
        "step_up_required",
    )
    .await;
    // Another user cannot finish my ceremony.
    let (ceremony, options) = begin(&app, &fresh.access).await;
    let credential = device.create(&options).unwrap();
    let eve = app.signed_in("eve@example.com").await;
    assert_problem(
        finish(&app, &eve.access, &ceremony, &credential, "x").await,
        StatusCode::BAD_REQUEST,
        "invalid_ceremony",
    )
    .await;
    assert!(list(&app, &eve.access).await.is_empty());
    let r = app.post("/v1/me/passkeys/register", &json!({})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_host_name_there_are_no_passkeys() {
    let app = TestApp::spawn().await;
    let r = app.post("/v1/auth/passkey", &json!({})).await;
    assert_problem(r, StatusCode::NOT_FOUND, "passkeys_unavailable").await;
}

// ---- Passwordless sign-up, and a role that requires a second factor ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passwordless_sign_up_enrols_one_passkey_and_keeps_its_last_way_in() {
    let closed = passkey_app(|_| {}).await;
    let r = closed.post("/v1/auth/register", &json!({"email": "no@example.com"})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let app = passkey_app(|c| c.passwords.optional = true).await;
    let r = app.post("/v1/auth/register", &json!({"email": "lea@example.com"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let account: Value = r.json().await.unwrap();
    let token = account["enrolment_token"].as_str().unwrap().to_owned();
    // The token enrols, and nothing else.
    assert_eq!(app.status_of_me(&token).await, StatusCode::UNAUTHORIZED);
    let r = app.get_auth("/v1/me/passkeys", &token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let mut device = Authenticator::new(&origin(&app));
    let (ceremony, options) = begin(&app, &token).await;
    assert_eq!(options["user"]["name"], "lea@example.com");
    let credential = device.create(&options).unwrap();
    let r = finish(&app, &token, &ceremony, &credential, "first").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Spent by the enrolment.
    let r = app.post_auth("/v1/me/passkeys/register", &token, &json!({})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_enrolment_token").await;

    let t = signed_in_by_passkey(&app, &mut device, 0).await;
    assert_eq!(user_id(&app, &t.access).await, account["id"].as_str().unwrap());
    // The only way in stays.
    let items = list(&app, &t.access).await;
    let id = items[0]["id"].as_str().unwrap();
    let r = call(&app, &t.access, Method::DELETE, &format!("/v1/me/passkeys/{id}"), None).await;
    assert_problem(r, StatusCode::CONFLICT, "last_login_method").await;
    // With a second one, the first may go.
    let mut other = Authenticator::new(&origin(&app));
    enrol(&app, &t.access, &mut other, "second").await;
    let r = call(&app, &t.access, Method::DELETE, &format!("/v1/me/passkeys/{id}"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    signed_in_by_passkey(&app, &mut other, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_address_gets_the_same_answer_and_its_passkey_is_stored_nowhere() {
    let sink = MailSink::start().await;
    let app = passkey_app(|c| {
        sink.configure(c);
        c.verification.email = VerifyMode::Required;
        c.verification.resend_interval = HumanDuration::secs(0);
        c.passwords.optional = true;
    })
    .await;
    app.register("taken@example.com").await;
    let r = app.post("/v1/auth/register", &json!({"email": "taken@example.com"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let decoy: Value = r.json().await.unwrap();
    let token = decoy["enrolment_token"].as_str().unwrap().to_owned();
    let mut device = Authenticator::new(&origin(&app));
    let (ceremony, options) = begin(&app, &token).await;
    assert_eq!(options["user"]["name"], "taken@example.com");
    let credential = device.create(&options).unwrap();
    assert_eq!(finish(&app, &token, &ceremony, &credential, "x").await.status(), StatusCode::CREATED);
    assert_problem(sign_in(&app, &mut device, 0).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    // The owner was told of the attempt.
    assert!(sink.first_to("taken@example.com").await.subject.len() > 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_satisfies_a_role_that_requires_a_second_factor() {
    let app = passkey_app(|_| {}).await;
    let admin = app.admin("root@example.com").await;
    let r = call(&app, &admin.access, Method::POST, "/v1/admin/roles", Some(json!({"name": "ops", "permissions": []})))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    call(&app, &admin.access, Method::PATCH, "/v1/admin/roles/ops", Some(json!({"require_mfa": true}))).await;
    let (olga, _) = app.user_with_roles("olga@example.com", &["user"]).await;
    let r = call(
        &app,
        &admin.access,
        Method::PATCH,
        &format!("/v1/admin/users/{olga}"),
        Some(json!({"roles": ["user", "ops"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.post("/v1/auth/login", &json!({"login": "olga@example.com", "password": PASSWORD})).await;
    let p = assert_problem(r, StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
    let mfa_token = p["mfa_token"].as_str().unwrap().to_owned();
    let mut device = Authenticator::new(&origin(&app));
    enrol(&app, &mfa_token, &mut device, "ops key").await;
    let t = signed_in_by_passkey(&app, &mut device, 0).await;
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);
    // A refresh keeps it: the session counts as two factors.
    assert_eq!(app.refresh(&t.refresh).await.status(), StatusCode::OK);
}

// ---- The recovery ladder ----

fn with_mail(sink: &MailSink) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        on_localhost(c);
        sink.configure(c);
        c.verification.email = VerifyMode::Optional;
        c.verification.resend_interval = HumanDuration::secs(0);
    }
}

/// A user whose one way in is a passkey, with the recovery codes it brought; their email is
/// proven (the confirmation link followed).
async fn passkey_only_user(app: &TestApp, sink: &MailSink, email: &str) -> (Authenticator, Vec<String>, Tokens) {
    let r = app.post("/v1/auth/register", &json!({"email": email})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = r.json::<Value>().await.unwrap()["enrolment_token"].as_str().unwrap().to_owned();
    let confirm = sink.first_to(email).await.token("http");
    assert_eq!(app.post("/v1/auth/verify", &json!({"token": confirm})).await.status(), StatusCode::NO_CONTENT);
    let mut device = Authenticator::new(&origin(app));
    let passkey = enrol(app, &token, &mut device, "only").await;
    let codes = passkey["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    let tokens = signed_in_by_passkey(app, &mut device, 0).await;
    (device, codes, tokens)
}

/// Enrols a new passkey with a recovery's token; the new device.
async fn enrol_with_recovery(app: &TestApp, enrolment: &Value) -> Authenticator {
    let token = enrolment["enrolment_token"].as_str().unwrap();
    assert!(enrolment["expires_in"].as_u64().unwrap() > 0);
    let mut device = Authenticator::new(&origin(app));
    enrol(app, token, &mut device, "recovered").await;
    device
}

async fn recover_finish(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/auth/recover/finish", &body).await
}

async fn ladder_story(app: &TestApp, sink: &MailSink) {
    let (_lost, codes, before) = passkey_only_user(app, sink, "lou@example.com").await;
    let mails = sink.count_to("lou@example.com");

    // Rung 3: a recovery code. A wrong one changes nothing.
    let r = recover_finish(app, json!({"login": "lou@example.com", "recovery_code": "zzzz-zzzz"})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
    let r = recover_finish(app, json!({"login": "nobody@example.com", "recovery_code": codes[0]})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
    assert_eq!(app.status_of_me(&before.access).await, StatusCode::OK);
    let r = recover_finish(app, json!({"login": "lou@example.com", "recovery_code": codes[0]})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let enrolment: Value = r.json().await.unwrap();
    // The code is spent.
    let r = recover_finish(app, json!({"login": "lou@example.com", "recovery_code": codes[0]})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
    let mut third = enrol_with_recovery(app, &enrolment).await;
    // Every other session ended, and the user was told.
    assert_eq!(app.refresh(&before.refresh).await.status(), StatusCode::UNAUTHORIZED);
    let notice = sink.nth_to("lou@example.com", mails + 1).await;
    assert!(notice.subject.contains("passkey"), "{}", notice.subject);
    signed_in_by_passkey(app, &mut third, 0).await;

    // Rung 4: the mailed link and code are one secret.
    let r = app.post("/v1/auth/recover", &json!({"login": "lou@example.com"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let unknown = app.post("/v1/auth/recover", &json!({"login": "ghost@example.com"})).await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    let mail = sink.nth_to("lou@example.com", mails + 2).await;
    assert!(mail.link("http").contains("/ui/recover?token="), "{}", mail.text);
    let (link_token, code) = (mail.token("http"), mail.code());
    let r = recover_finish(app, json!({"login": "lou@example.com", "code": code})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let enrolment: Value = r.json().await.unwrap();
    let r = recover_finish(app, json!({"token": link_token})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
    let mut fourth = enrol_with_recovery(app, &enrolment).await;
    signed_in_by_passkey(app, &mut fourth, 0).await;
    // And the link alone works the same way.
    app.post("/v1/auth/recover", &json!({"login": "lou@example.com"})).await;
    let mail = sink.nth_to("lou@example.com", mails + 4).await;
    let r = recover_finish(app, json!({"token": mail.token("http")})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = recover_finish(app, json!({"login": "lou@example.com", "code": mail.code()})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;

    // A passkey added by a session is told to the owner too.
    let t = signed_in_by_passkey(app, &mut fourth, 0).await;
    let mut fifth = Authenticator::new(&origin(app));
    enrol(app, &t.access, &mut fifth, "tablet").await;
    let notice = sink.nth_to("lou@example.com", mails + 5).await;
    assert!(notice.subject.contains("passkey was added") && notice.text.contains("tablet"), "{notice:?}");

    // Bad shapes.
    for body in [
        json!({"code": "123456"}),
        json!({"login": "lou@example.com"}),
        json!({"token": "x", "login": "lou@example.com", "code": "123456"}),
        json!({"login": "lou@example.com", "recovery_code": "x", "factor": "123456"}),
    ] {
        let r = recover_finish(app, body).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
}

/// The event types a webhook receiver was sent.
type Heard = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

async fn webhook_receiver() -> (String, Heard) {
    use poem::{EndpointExt as _, Route, handler, http::StatusCode as PoemStatus, web::Data};
    #[handler]
    fn hook(body: String, heard: Data<&Heard>) -> PoemStatus {
        let event: Value = serde_json::from_str(&body).unwrap_or_default();
        heard.lock().unwrap().push(event["type"].as_str().unwrap_or_default().to_owned());
        PoemStatus::NO_CONTENT
    }
    let heard = Heard::default();
    let addr = crate::support::serve_fake(Route::new().at("/hook", poem::post(hook)).data(heard.clone())).await;
    (format!("http://{addr}/hook"), heard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_ladder_needs_no_administrator_until_the_last_rung() {
    let sink = MailSink::start().await;
    let (hook, heard) = webhook_receiver().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink)(c);
        c.passwords.optional = true;
        c.webhooks = vec![authd::config::WebhookConfig {
            url: hook,
            secret: authd::config::Secret("whsec_a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=".into()),
            events: vec!["user.recovered".into()],
        }];
    })
    .await;
    ladder_story(&app, &sink).await;
    // The audit log has each recovery, and the webhook hears of them.
    let admin = app.admin("root@example.com").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app.get_auth("/v1/admin/audit?event=user.recovered", &admin.access).await;
    let events: Value = r.json().await.unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 2, "{events}");
    for _ in 0..100 {
        if heard.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(*heard.lock().unwrap(), ["user.recovered", "user.recovered"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_rungs_are_another_passkey_and_the_password_with_its_second_factor() {
    let app = passkey_app(|_| {}).await;
    let t = app.signed_in("uma@example.com").await;
    let mut phone = Authenticator::new(&origin(&app));
    let mut laptop = Authenticator::new(&origin(&app));
    enrol(&app, &t.access, &mut phone, "phone").await;
    enrol(&app, &t.access, &mut laptop, "laptop").await;
    // Rung 1: the phone is lost; the laptop signs in, and removes the phone.
    let by_laptop = signed_in_by_passkey(&app, &mut laptop, 0).await;
    let items = list(&app, &by_laptop.access).await;
    let phone_id = items.iter().find(|p| p["name"] == "phone").unwrap()["id"].as_str().unwrap().to_owned();
    let r = call(&app, &by_laptop.access, Method::DELETE, &format!("/v1/me/passkeys/{phone_id}"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_problem(sign_in(&app, &mut phone, 0).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    // Rung 2: both gone; the password (a fresh sign-in) enrols a new one.
    let fresh = Tokens::from(&app.login("uma@example.com", PASSWORD).await);
    let mut new_phone = Authenticator::new(&origin(&app));
    enrol(&app, &fresh.access, &mut new_phone, "new phone").await;
    signed_in_by_passkey(&app, &mut new_phone, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_ladder_holds_on_postgres() {
    let sink = MailSink::start().await;
    let Some(app) = TestApp::spawn_on_postgres(|c| {
        with_mail(&sink)(c);
        c.passwords.optional = true;
    })
    .await
    else {
        return;
    };
    ladder_story(&app, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_link_is_the_last_rung() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink)(c);
        c.passwords.optional = true;
    })
    .await;
    let (_lost, _codes, before) = passkey_only_user(&app, &sink, "max@example.com").await;
    let out = binary::ok(app.dir.path(), &["user", "recovery-link", "max@example.com", "--json"], None).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    let link = v["link"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/ui/recover?token=", origin(&app))), "{link}");
    assert_eq!(v["expires_in"], 3600);
    let token = url::Url::parse(link).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
    let r = recover_finish(&app, json!({"token": token})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let enrolment: Value = r.json().await.unwrap();
    assert_problem(
        recover_finish(&app, json!({"token": token})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
    )
    .await;
    let mut device = enrol_with_recovery(&app, &enrolment).await;
    assert_eq!(app.refresh(&before.refresh).await.status(), StatusCode::UNAUTHORIZED);
    signed_in_by_passkey(&app, &mut device, 0).await;
    // An unknown login is a clear error.
    let o = binary::run(app.dir.path(), &["user", "recovery-link", "nobody@example.com"], None).await;
    assert!(!o.ok && o.stderr.contains("not found"), "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_an_account_nobody_had_proven_drops_what_strangers_added() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink)(c);
        c.passwords.optional = true;
    })
    .await;
    // Someone signs up with an address that is not theirs, and adds a passkey and a password.
    let r = app.post("/v1/auth/register", &json!({"email": "vic@example.com"})).await;
    let token = r.json::<Value>().await.unwrap()["enrolment_token"].as_str().unwrap().to_owned();
    let mut intruder = Authenticator::new(&origin(&app));
    enrol(&app, &token, &mut intruder, "mine").await;
    let squatter = signed_in_by_passkey(&app, &mut intruder, 0).await;
    // The address's owner recovers it through the mail.
    app.post("/v1/auth/recover", &json!({"login": "vic@example.com"})).await;
    let mail = sink.nth_to("vic@example.com", 2).await;
    assert!(mail.text.contains("/ui/recover?token="), "{}", mail.text);
    let r = recover_finish(&app, json!({"token": mail.token("http")})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let enrolment: Value = r.json().await.unwrap();
    assert_problem(sign_in(&app, &mut intruder, 0).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    assert_eq!(app.refresh(&squatter.refresh).await.status(), StatusCode::UNAUTHORIZED);
    let mut owner = enrol_with_recovery(&app, &enrolment).await;
    let t = signed_in_by_passkey(&app, &mut owner, 0).await;
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["email_verified"], true);
}

// ---- Several nodes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceremony_begun_on_one_node_finishes_on_another_once() {
    let Some(redis) = crate::support::Redis::start().await else { return };
    let Some(db) = crate::support::postgres_db().await else { return };
    // Two nodes behind one public address.
    let public = format!("http://localhost:{}", free_port());
    let node = |c: &mut Config| {
        crate::support::use_postgres(c, &db);
        redis.configure(c);
        c.server.public_url = Some(public.clone());
    };
    let a = TestApp::spawn_with(node).await;
    let b = TestApp::spawn_with(node).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = a.signed_in("nia@example.com").await;
    let mut device = Authenticator::new(&public);
    let (ceremony, options) = begin(&a, &t.access).await;
    let credential = device.create(&options).unwrap();
    assert_eq!(finish(&b, &t.access, &ceremony, &credential, "x").await.status(), StatusCode::CREATED);
    assert_problem(
        finish(&a, &t.access, &ceremony, &credential, "x").await,
        StatusCode::BAD_REQUEST,
        "invalid_ceremony",
    )
    .await;
    let (ceremony, options) = sign_in_options(&b).await;
    let assertion = device.get(&options, 0);
    assert_eq!(sign_in_with(&a, &ceremony, &assertion).await.status(), StatusCode::OK);
    assert_problem(sign_in_with(&b, &ceremony, &assertion).await, StatusCode::BAD_REQUEST, "invalid_ceremony").await;
}

// ---- What an outside review tried ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_passkey_the_password_alone_never_opens_an_enrolment_a_role_demands() {
    let app = passkey_app(|_| {}).await;
    let admin = app.admin("root@example.com").await;
    call(&app, &admin.access, Method::POST, "/v1/admin/roles", Some(json!({"name": "ops", "permissions": []}))).await;
    call(&app, &admin.access, Method::PATCH, "/v1/admin/roles/ops", Some(json!({"require_mfa": true}))).await;
    let (id, t) = app.user_with_roles("rex@example.com", &["user"]).await;
    let mut device = Authenticator::new(&origin(&app));
    enrol(&app, &t.access, &mut device, "rex").await;
    call(&app, &admin.access, Method::PATCH, &format!("/v1/admin/users/{id}"), Some(json!({"roles": ["user", "ops"]})))
        .await;
    // A stolen password gets no mfa_token to enrol an attacker's passkey with.
    let r = app.post("/v1/auth/login", &json!({"login": "rex@example.com", "password": PASSWORD})).await;
    let p = assert_problem(r, StatusCode::FORBIDDEN, "passkey_required").await;
    assert!(p.get("mfa_token").is_none(), "{p}");
    // The passkey signs in.
    signed_in_by_passkey(&app, &mut device, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_recovery_of_an_account_with_an_authenticator_app_needs_its_code() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink)(c);
        c.passwords.optional = true;
    })
    .await;
    let (_lost, _, t) = passkey_only_user(&app, &sink, "tia@example.com").await;
    // She turns TOTP on.
    let r = call(&app, &t.access, Method::POST, "/v1/me/mfa/totp", None).await;
    let secret = r.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
    let totp = |s: &str| {
        totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(30)
            .with_secret(totp_rs::Secret::try_from_base32(s).unwrap())
            .build()
            .unwrap()
    };
    let code = totp(&secret).generate_current().to_string();
    let r = call(&app, &t.access, Method::POST, "/v1/me/mfa/totp/confirm", Some(json!({"code": code}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Turning TOTP on brings new recovery codes, which replace the passkey's.
    let codes: Vec<String> = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let mails = sink.count_to("tia@example.com");
    app.post("/v1/auth/recover", &json!({"login": "tia@example.com"})).await;
    let mail = sink.nth_to("tia@example.com", mails + 1).await;
    let token = mail.token("http");
    // The mailbox alone is not enough; asking costs nothing.
    let r = recover_finish(&app, json!({"token": token})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "factor_required").await;
    // A wrong code is refused.
    let r = recover_finish(&app, json!({"token": token, "factor": "000000"})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    // A recovery code with the link works.
    let r = recover_finish(&app, json!({"token": token, "factor": codes[1]})).await;
    assert_eq!(r.status(), StatusCode::OK);
    enrol_with_recovery(&app, &r.json().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatters_recovery_codes_and_passkeys_go_when_the_owner_proves_the_address() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink)(c);
        c.passwords.optional = true;
    })
    .await;
    // A squatter signs up with the victim's address: a passkey and its recovery codes.
    let r = app.post("/v1/auth/register", &json!({"email": "val@example.com"})).await;
    let token = r.json::<Value>().await.unwrap()["enrolment_token"].as_str().unwrap().to_owned();
    let mut intruder = Authenticator::new(&origin(&app));
    let p = enrol(&app, &token, &mut intruder, "mine").await;
    let codes: Vec<String> =
        p["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    // The owner takes it back through the mail, and gets recovery codes of their own.
    app.post("/v1/auth/recover", &json!({"login": "val@example.com"})).await;
    let mail = sink.nth_to("val@example.com", 2).await;
    let r = recover_finish(&app, json!({"token": mail.token("http")})).await;
    let enrolment: Value = r.json().await.unwrap();
    let mut owner = Authenticator::new(&origin(&app));
    let mine = enrol(&app, enrolment["enrolment_token"].as_str().unwrap(), &mut owner, "mine").await;
    assert_eq!(mine["recovery_codes"].as_array().unwrap().len(), 10);
    // The squatter's codes are gone.
    let r = recover_finish(&app, json!({"login": "val@example.com", "recovery_code": codes[0]})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
    signed_in_by_passkey(&app, &mut owner, 0).await;

    // The same through a password reset: a squatter's passkey goes at the first proof.
    let r = app.post("/v1/auth/register", &json!({"email": "wes@example.com"})).await;
    let token = r.json::<Value>().await.unwrap()["enrolment_token"].as_str().unwrap().to_owned();
    let mut intruder = Authenticator::new(&origin(&app));
    enrol(&app, &token, &mut intruder, "mine").await;
    app.post("/v1/auth/password/forgot", &json!({"login": "wes@example.com"})).await;
    let mail = sink.nth_to("wes@example.com", 2).await;
    let r = app
        .post(
            "/v1/auth/password/reset",
            &json!({"token": mail.token("http"), "new_password": "the owner's passphrase"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_problem(sign_in(&app, &mut intruder, 0).await, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoy_enrolment_answers_like_a_first_passkey() {
    let sink = MailSink::start().await;
    let app = passkey_app(|c| {
        sink.configure(c);
        c.verification.email = VerifyMode::Required;
        c.verification.resend_interval = HumanDuration::secs(0);
        c.passwords.optional = true;
    })
    .await;
    app.register("held@example.com").await;
    let mut answers = Vec::new();
    for email in ["held@example.com", "fresh@example.com"] {
        let r = app.post("/v1/auth/register", &json!({"email": email})).await;
        let token = r.json::<Value>().await.unwrap()["enrolment_token"].as_str().unwrap().to_owned();
        let mut device = Authenticator::new(&origin(&app));
        let p = enrol(&app, &token, &mut device, "k").await;
        let mut keys: Vec<String> = p.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        answers.push((keys, p["recovery_codes"].as_array().unwrap().len()));
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_a_mail_never_cancels_the_operators_link() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_mail(&sink)(c);
        c.passwords.optional = true;
    })
    .await;
    passkey_only_user(&app, &sink, "ola@example.com").await;
    let (_, link) =
        app.svc().recovery.recovery_link(&authd::service::Principal::Operator, "ola@example.com").await.unwrap();
    app.post("/v1/auth/recover", &json!({"login": "ola@example.com"})).await;
    let token = url::Url::parse(&link).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
    assert_eq!(recover_finish(&app, json!({"token": token})).await.status(), StatusCode::OK);
}
