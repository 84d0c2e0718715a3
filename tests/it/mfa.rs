//! TOTP two-factor login through the real API, with codes from an independent implementation
//! (oathtool when installed, cross-checked against the RFC 6238 vectors; else HMAC-SHA1 here).

use std::{process::Command, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{MailSink, PASSWORD, TestApp, Tokens, assert_problem, call, claims_of};

fn has_oathtool() -> bool {
    let found = Command::new("oathtool").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found || std::env::var_os("TEST_AUTHD_REQUIRE_SERVICES").is_none(), "oathtool is not installed");
    found
}

fn base32_decode(s: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        bits = (bits << 5) | u64::from(v);
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// RFC 6238 with HMAC-SHA1, written from the RFC.
fn hotp_here(secret: &[u8], time: u64, digits: u32) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = ring::hmac::sign(&key, &(time / 30).to_be_bytes());
    let m = mac.as_ref();
    let off = usize::from(m[19] & 0x0f);
    let bin = u32::from_be_bytes([m[off] & 0x7f, m[off + 1], m[off + 2], m[off + 3]]);
    format!("{:0width$}", bin % 10u32.pow(digits), width = digits as usize)
}

/// The code for `time` (seconds since the epoch), from outside authd.
pub(crate) fn code_at(secret_b32: &str, time: u64) -> String {
    if has_oathtool() {
        let out =
            Command::new("oathtool").args(["--totp", "-b", "--now", &format!("@{time}"), secret_b32]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    } else {
        hotp_here(&base32_decode(secret_b32), time, 6)
    }
}

pub(crate) fn now() -> u64 {
    authd::model::now()
}

#[test]
fn the_independent_codes_match_rfc_6238_appendix_b() {
    let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
    for (time, code) in [(59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"), (2000000000, "69279037")]
    {
        assert_eq!(hotp_here(&base32_decode(seed), time, 8), code);
        if has_oathtool() {
            let out = Command::new("oathtool")
                .args(["--totp", "-b", "-d", "8", "--now", &format!("@{time}"), seed])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), code);
        }
    }
}

/// Enrols TOTP for a signed-in user; returns the base32 secret and the recovery codes.
pub(crate) async fn enrol(app: &TestApp, access: &str) -> (String, Vec<String>) {
    let r = call(app, access, Method::POST, "/v1/me/mfa/totp", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let e: Value = r.json().await.unwrap();
    let secret = e["secret"].as_str().unwrap().to_owned();
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    // Not on until confirmed.
    let me: Value = app.get_auth("/v1/me", access).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], json!(false));
    let wrong = if code_at(&secret, now()) == "000000" { "111111" } else { "000000" };
    let r = call(app, access, Method::POST, "/v1/me/mfa/totp/confirm", Some(json!({"code": wrong}))).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let r = call(app, access, Method::POST, "/v1/me/mfa/totp/confirm", Some(json!({"code": code_at(&secret, now())})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let codes: Vec<String> =
        serde_json::from_value(r.json::<Value>().await.unwrap()["recovery_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn mfa_token(app: &TestApp, login: &str) -> String {
    let r = app.post("/v1/auth/login", &json!({"login": login, "password": PASSWORD})).await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "mfa_required").await;
    p["mfa_token"].as_str().unwrap().to_owned()
}

async fn totp_story(app: &TestApp) {
    app.register("mia@example.com").await;
    let t = Tokens::from(&app.login("mia@example.com", PASSWORD).await);
    let (secret, recovery) = enrol(app, &t.access).await;
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], json!(true));
    let r = call(app, &t.access, Method::POST, "/v1/me/mfa/totp", None).await;
    assert_problem(r, StatusCode::CONFLICT, "mfa_already_enabled").await;

    // Password alone no longer signs in; a wrong password still says only that.
    let r =
        app.post("/v1/auth/login", &json!({"login": "mia@example.com", "password": "not the password at all"})).await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert!(p.get("mfa_token").is_none());
    let token = mfa_token(app, "mia@example.com").await;
    // The mfa_token is no access token.
    assert_eq!(app.status_of_me(&token).await, StatusCode::UNAUTHORIZED);
    let wrong = if code_at(&secret, now() + 30) == "000000" { "111111" } else { "000000" };
    assert_problem(
        app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": wrong})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    let mut tampered = token.clone();
    tampered.replace_range(..1, if token.starts_with('A') { "B" } else { "A" });
    let next = code_at(&secret, now() + 30);
    assert_problem(
        app.post("/v1/auth/login/mfa", &json!({"mfa_token": tampered, "code": next})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;

    // The next step's code (the confirmation spent this one) signs in, once.
    let r = app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": next})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let signed: Value = r.json().await.unwrap();
    let c = claims_of(signed["access_token"].as_str().unwrap());
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    assert!(c["auth_time"].as_u64().unwrap().abs_diff(now()) < 5);
    assert_problem(
        app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": next})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    // The same code with a fresh mfa_token: a replay.
    let token = mfa_token(app, "mia@example.com").await;
    assert_problem(
        app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": next})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;

    // A recovery code works once, in any case and with or without its dash.
    let r = app
        .post(
            "/v1/auth/login/mfa",
            &json!({"mfa_token": token, "recovery_code": recovery[0].to_uppercase().replace('-', "")}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = mfa_token(app, "mia@example.com").await;
    assert_problem(
        app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "recovery_code": recovery[0]})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    // Exactly one factor per request.
    let r = app
        .post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": "123456", "recovery_code": recovery[1]}))
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;

    // Turning it off needs the password and a factor.
    let signed = Tokens::from(&signed);
    let r = call(
        app,
        &signed.access,
        Method::DELETE,
        "/v1/me/mfa/totp",
        Some(json!({"password": "wrong password!", "recovery_code": recovery[1]})),
    )
    .await;
    assert_problem(r, StatusCode::FORBIDDEN, "invalid_current_password").await;
    let r = call(
        app,
        &signed.access,
        Method::DELETE,
        "/v1/me/mfa/totp",
        Some(json!({"password": PASSWORD, "recovery_code": recovery[0]})),
    )
    .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let r = call(
        app,
        &signed.access,
        Method::DELETE,
        "/v1/me/mfa/totp",
        Some(json!({"password": PASSWORD, "recovery_code": recovery[1]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let t = Tokens::from(&app.login("mia@example.com", PASSWORD).await);
    assert_eq!(claims_of(&t.access)["amr"], json!(["pwd"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrolment_login_replay_recovery_and_removal() {
    let app = TestApp::spawn().await;
    totp_story(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_totp_story_holds_on_postgres() {
    let Some(app) = TestApp::spawn_on_postgres(|_| {}).await else { return };
    totp_story(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_database_alone_does_not_yield_totp_secrets() {
    let mut app = TestApp::spawn().await;
    app.register("sam@example.com").await;
    let t = Tokens::from(&app.login("sam@example.com", PASSWORD).await);
    let (secret, _) = enrol(&app, &t.access).await;
    app.shutdown().await;
    let file = app.dir.path().join("authd.redb");
    let bytes = std::fs::read(&file).unwrap();
    let raw = base32_decode(&secret);
    assert!(!bytes.windows(raw.len()).any(|w| w == raw.as_slice()), "the raw secret is in the file");
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the base32 secret is in the file");
    let store = authd::store::Store::open_redb(&file).unwrap();
    let user = store.read(|tx| tx.user_by_login(authd::store::LoginName::Email("sam@example.com"))).unwrap().unwrap();
    assert!(user.totp.unwrap().secret.starts_with("v1."), "sealed");
    // The key lives apart from the database, private to its owner.
    use std::os::unix::fs::PermissionsExt as _;
    let key = std::fs::metadata(app.dir.path().join("authd.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_burn_the_mfa_token_and_count_as_failed_logins() {
    let app = TestApp::spawn_with(|c| c.brute_force.free_failures = 100).await;
    app.register("noah@example.com").await;
    let t = Tokens::from(&app.login("noah@example.com", PASSWORD).await);
    let (secret, _) = enrol(&app, &t.access).await;
    let token = mfa_token(&app, "noah@example.com").await;
    let wrong = if code_at(&secret, now() + 30) == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_problem(
            app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": wrong})).await,
            StatusCode::UNAUTHORIZED,
            "invalid_mfa_code",
        )
        .await;
    }
    let right = code_at(&secret, now() + 30);
    assert_problem(
        app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": right})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    let user: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    let events = app.svc().audit.mine(user["id"].as_str().unwrap().parse().unwrap(), 50).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event == "user.mfa_failed").count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mfa_token_expires() {
    let app = TestApp::spawn_with(|c| c.security.mfa_token_ttl = authd::config::HumanDuration::secs(1)).await;
    app.register("olga@example.com").await;
    let t = Tokens::from(&app.login("olga@example.com", PASSWORD).await);
    let (secret, _) = enrol(&app, &t.access).await;
    let token = mfa_token(&app, "olga@example.com").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": code_at(&secret, now() + 30)})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_can_require_a_second_factor_and_its_members_may_only_enrol() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root@example.com").await;
    let r = call(
        &app,
        &admin.access,
        Method::POST,
        "/v1/admin/roles",
        Some(json!({"name": "finance", "permissions": ["ledger:read"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r =
        call(&app, &admin.access, Method::PATCH, "/v1/admin/roles/finance", Some(json!({"require_mfa": true}))).await;
    assert_eq!(r.json::<Value>().await.unwrap()["require_mfa"], json!(true));
    let pat: Value = app.register("pat@example.com").await;
    let r = call(
        &app,
        &admin.access,
        Method::PATCH,
        &format!("/v1/admin/users/{}", pat["id"].as_str().unwrap()),
        Some(json!({"roles": ["user", "finance"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = app.post("/v1/auth/login", &json!({"login": "pat@example.com", "password": PASSWORD})).await;
    let p = assert_problem(r, StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
    let token = p["mfa_token"].as_str().unwrap().to_owned();
    // It enrols, and nothing else.
    assert_eq!(app.status_of_me(&token).await, StatusCode::UNAUTHORIZED);
    assert_problem(
        app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": "123456"})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    let r = app.post("/v1/auth/mfa/enrol", &json!({"mfa_token": token})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let secret = r.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
    let r = app.post("/v1/auth/mfa/enrol/confirm", &json!({"mfa_token": token, "code": code_at(&secret, now())})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(claims_of(done["tokens"]["access_token"].as_str().unwrap())["amr"], json!(["pwd", "otp"]));
    // Spent.
    assert_problem(
        app.post("/v1/auth/mfa/enrol", &json!({"mfa_token": token})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    // From now on, the usual second step.
    mfa_token(&app, "pat@example.com").await;

    // The operator's reset takes the factor away (audited); the role asks for one again.
    let r = call(
        &app,
        &admin.access,
        Method::DELETE,
        &format!("/v1/admin/users/{}/mfa", pat["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["mfa_enabled"], json!(false));
    let r = app.post("/v1/auth/login", &json!({"login": "pat@example.com", "password": PASSWORD})).await;
    assert_problem(r, StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_from_a_new_device_is_announced_unless_the_user_opts_out() {
    let sink = MailSink::start().await;
    let app = TestApp::spawn_with(|c| sink.configure(c)).await;
    app.register("quentin@example.com").await;
    let login_with = |agent: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(app.url("/v1/auth/login"))
                .header("user-agent", agent)
                .json(&json!({"login": "quentin@example.com", "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            Tokens::from(&r.json::<Value>().await.unwrap())
        }
    };
    let first = login_with("Laptop/1.0").await;
    login_with("Laptop/1.0").await;
    login_with("Phone/2.0").await;
    let notice = sink.first_to("quentin@example.com").await;
    assert!(notice.subject.contains("New sign-in"), "{}", notice.subject);
    assert!(notice.text.contains("Phone/2.0"), "{}", notice.text);
    let r = call(&app, &first.access, Method::PATCH, "/v1/me", Some(json!({"new_device_notices": false}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    login_with("Tablet/3.0").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sink.count_to("quentin@example.com"), 1, "the first device and the opted-out one send nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_resets_factors_and_sets_role_rules_from_the_cli() {
    let app = TestApp::spawn().await;
    app.register("rita@example.com").await;
    let t = Tokens::from(&app.login("rita@example.com", PASSWORD).await);
    enrol(&app, &t.access).await;
    mfa_token(&app, "rita@example.com").await;
    let d = app.dir.path();
    let shown = crate::support::binary::ok(d, &["user", "show", "rita@example.com"], None).await;
    assert!(shown.contains("mfa:       totp"), "{shown}");
    let out = crate::support::binary::ok(d, &["user", "mfa", "reset", "rita@example.com"], None).await;
    assert!(out.starts_with("second factors reset: rita@example.com"), "{out}");
    app.login("rita@example.com", PASSWORD).await;

    let out = crate::support::binary::ok(d, &["role", "require-mfa", "user", "on"], None).await;
    assert!(out.contains("second factor required"), "{out}");
    let r = app.post("/v1/auth/login", &json!({"login": "rita@example.com", "password": PASSWORD})).await;
    assert_problem(r, StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
    crate::support::binary::ok(d, &["role", "require-mfa", "user", "off"], None).await;
    app.login("rita@example.com", PASSWORD).await;
    crate::support::binary::fails(d, &["user", "mfa", "reset", "nobody@example.com"], "not found").await;
}

/// The second step checks the code, spends the token and opens the session in one transaction:
/// a step refused because the account was disabled meanwhile spends nothing, and once the
/// account is enabled again the same token and code sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_second_step_spends_neither_token_nor_code() {
    use authd::{model::UserStatus, service::Principal};
    let app = TestApp::spawn().await;
    app.register("mo@example.com").await;
    let t = Tokens::from(&app.login("mo@example.com", PASSWORD).await);
    let (secret, _) = enrol(&app, &t.access).await;
    let token = mfa_token(&app, "mo@example.com").await;
    let next = code_at(&secret, now() + 30);
    app.svc().accounts.set_status(&Principal::Operator, "mo@example.com", UserStatus::Disabled).await.unwrap();
    let r = app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": next})).await;
    assert_problem(r, StatusCode::FORBIDDEN, "account_disabled").await;
    app.svc().accounts.set_status(&Principal::Operator, "mo@example.com", UserStatus::Active).await.unwrap();
    let r = app.post("/v1/auth/login/mfa", &json!({"mfa_token": token, "code": next})).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}
