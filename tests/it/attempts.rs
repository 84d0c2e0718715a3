//! Guessing passwords: in parallel, under every spelling of an account, after washing the
//! address with a login of one's own, from a whole IPv6 /64, behind a password change, with a
//! CAPTCHA, and through a proxy that names the client in a header of its choosing.

use std::sync::{Arc, Mutex};

use authd::config::{Argon2Config, ChallengeKind, ClientIpHeader, HumanDuration, Limit, Secret};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, assert_problem, client_from};

async fn login(client: &reqwest::Client, app: &TestApp, body: Value) -> reqwest::Response {
    client.post(app.url("/v1/auth/login")).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_get_no_more_guesses_than_sequential_ones() {
    let app = Arc::new(
        TestApp::spawn_with(|c| {
            // Slow enough hashing that all ten guesses are in flight together.
            c.passwords.argon2 = Argon2Config { memory_kib: 8 * 1024, iterations: 4, parallelism: 1 };
            c.brute_force.free_failures = 5;
            c.brute_force.base_delay = HumanDuration::secs(60);
            c.brute_force.challenge_after = 100;
        })
        .await,
    );
    app.register("target@example.com").await;
    for name in ["target@example.com", "nobody-here@example.com"] {
        let guesses = (0..10).map(|i| {
            let app = Arc::clone(&app);
            let body = json!({"login": name, "password": format!("guess number {i}")});
            tokio::spawn(async move { app.post("/v1/auth/login", &body).await.status() })
        });
        let mut statuses = Vec::new();
        for g in guesses {
            statuses.push(g.await.unwrap());
        }
        let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
        let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
        assert_eq!(checked, 5, "{name}: {statuses:?}");
        assert_eq!(throttled, 5, "{name}: {statuses:?}");
    }
}

#[tokio::test]
async fn every_spelling_of_an_account_shares_one_budget() {
    let app = TestApp::spawn_with(|c| {
        c.brute_force.free_failures = 3;
        c.brute_force.base_delay = HumanDuration::secs(60);
        c.brute_force.challenge_after = 100;
    })
    .await;
    let r = app
        .post(
            "/v1/auth/register",
            &json!({"email": "multi@example.com", "phone": "+14155552671", "username": "multi", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let http = reqwest::Client::new();
    for name in ["multi@example.com", "MULTI", "+1 415 555 2671"] {
        let r = login(&http, &app, json!({"login": name, "password": "not the password"})).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    let r = login(&http, &app, json!({"login": "multi", "password": PASSWORD})).await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    // A name without an account behaves the same.
    for _ in 0..3 {
        let r = login(&http, &app, json!({"login": "ghost@example.com", "password": "not the password"})).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login(&http, &app, json!({"login": "Ghost@Example.com", "password": PASSWORD})).await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

#[tokio::test]
async fn signing_into_ones_own_account_does_not_wash_the_address() {
    let app = TestApp::spawn_with(|c| {
        c.brute_force.free_failures = 100;
        c.brute_force.challenge_after = 3;
    })
    .await;
    app.register("sprayer@example.com").await;
    for v in ["v1@example.com", "v2@example.com", "v3@example.com"] {
        app.register(v).await;
    }
    let sprayer = client_from("127.0.0.5");
    let spray = async |victim: &str| login(&sprayer, &app, json!({"login": victim, "password": "Spring2026!"})).await;
    assert_eq!(spray("v1@example.com").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(spray("v2@example.com").await.status(), StatusCode::UNAUTHORIZED);
    let own = login(&sprayer, &app, json!({"login": "sprayer@example.com", "password": PASSWORD})).await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(spray("v3@example.com").await.status(), StatusCode::UNAUTHORIZED);
    // Three failures from this address: the next guess anywhere needs a challenge.
    assert_problem(spray("v1@example.com").await, StatusCode::UNAUTHORIZED, "challenge_required").await;
    // Another address is not affected.
    let other = client_from("127.0.0.6");
    let r = login(&other, &app, json!({"login": "v1@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_ipv6_subnet_is_one_client() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.register.per_ip = Limit::new(1, 60, 2);
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let register = async |from: &str, i: u32| {
        app.http
            .post(app.url("/v1/auth/register"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": format!("v6-{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status()
    };
    // Three addresses of one /64: one budget of two.
    assert_eq!(register("2001:db8:1:2::1", 1).await, StatusCode::CREATED);
    assert_eq!(register("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 2).await, StatusCode::CREATED);
    assert_eq!(register("2001:db8:1:2:ffff::77", 3).await, StatusCode::TOO_MANY_REQUESTS);
    // The next /64 is another client.
    assert_eq!(register("2001:db8:1:3::1", 4).await, StatusCode::CREATED);
}

#[tokio::test]
async fn a_password_change_behind_a_challenge_accepts_a_solution() {
    let app = TestApp::spawn_with(|c| {
        c.brute_force.free_failures = 100;
        c.brute_force.challenge_after = 2;
        c.challenge.difficulty = 8;
    })
    .await;
    let t = app.signed_in("changer@example.com").await;
    let change = async |body: Value| app.post_auth("/v1/me/password", &t.access, &body).await;
    for _ in 0..2 {
        let r = change(json!({"current_password": "not it at all", "new_password": "a brand new passphrase"})).await;
        assert_problem(r, StatusCode::FORBIDDEN, "invalid_current_password").await;
    }
    let r = change(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "challenge_required").await;
    let c: Value = app.http.post(app.url("/v1/auth/challenge")).send().await.unwrap().json().await.unwrap();
    let challenge = c["challenge"].as_str().unwrap();
    let nonce = authd::security::pow::solve(challenge).unwrap();
    let r = change(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase",
        "challenge": challenge, "nonce": nonce}))
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let body = json!({"login": "changer@example.com", "password": "a brand new passphrase"});
    assert_eq!(login(&client_from("127.0.0.7"), &app, body).await.status(), StatusCode::OK);
}

/// A siteverify endpoint on 127.0.0.1 that accepts the response `good` for the secret `s3cret`
/// and records every form it receives.
type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;

async fn siteverify() -> (String, Forms) {
    use poem::{EndpointExt as _, Route, handler, post, web::Form};
    let seen: Forms = Arc::default();
    #[handler]
    fn verify(form: Form<Vec<(String, String)>>, seen: poem::web::Data<&Forms>) -> poem::web::Json<Value> {
        let get = |k: &str| form.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let ok = get("secret").as_deref() == Some("s3cret") && get("response").as_deref() == Some("good");
        seen.lock().unwrap().push(form.0.clone());
        poem::web::Json(json!({"success": ok}))
    }
    let addr = crate::support::serve_fake(Route::new().at("/siteverify", post(verify)).data(Arc::clone(&seen))).await;
    (format!("http://{addr}/siteverify"), seen)
}

#[tokio::test]
async fn a_captcha_can_stand_in_for_proof_of_work() {
    let (url, seen) = siteverify().await;
    let app = TestApp::spawn_with(|c| {
        c.brute_force.free_failures = 100;
        c.brute_force.challenge_after = 1;
        c.challenge.kind = ChallengeKind::Turnstile;
        c.challenge.secret = Some(Secret("s3cret".into()));
        c.challenge.site_key = Some("site-key-123".into());
        c.challenge.siteverify_url = Some(url);
    })
    .await;
    app.register("human@example.com").await;
    let r = app.post("/v1/auth/login", &json!({"login": "human@example.com", "password": "wrong password!"})).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = json!({"login": "human@example.com", "password": PASSWORD});
    assert_problem(app.post("/v1/auth/login", &body).await, StatusCode::UNAUTHORIZED, "challenge_required").await;
    let offer: Value = app.http.post(app.url("/v1/auth/challenge")).send().await.unwrap().json().await.unwrap();
    assert_eq!(offer, json!({"kind": "turnstile", "site_key": "site-key-123"}));
    let with = |captcha: &str| json!({"login": "human@example.com", "password": PASSWORD, "captcha": captcha});
    assert_problem(app.post("/v1/auth/login", &with("bad")).await, StatusCode::UNAUTHORIZED, "challenge_failed").await;
    assert_eq!(app.post("/v1/auth/login", &with("good")).await.status(), StatusCode::OK);
    let forms = seen.lock().unwrap().clone();
    assert_eq!(forms.len(), 2);
    assert!(forms[1].contains(&("remoteip".to_string(), "127.0.0.1".to_string())), "{forms:?}");
}

#[tokio::test]
async fn only_the_configured_client_ip_header_is_believed() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.register.per_ip = Limit::new(1, 60, 1);
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.server.client_ip_header = ClientIpHeader::Forwarded;
    })
    .await;
    // The proxy writes Forwarded; the client smuggles a different X-Forwarded-For each time.
    let register = async |xff: &str, i: u32| {
        app.http
            .post(app.url("/v1/auth/register"))
            .header("forwarded", "for=198.51.100.1;proto=https")
            .header("x-forwarded-for", xff)
            .json(&json!({"email": format!("hdr-{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(register("1.1.1.1", 1).await, StatusCode::CREATED);
    assert_eq!(register("2.2.2.2", 2).await, StatusCode::TOO_MANY_REQUESTS);
}
