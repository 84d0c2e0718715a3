//! Webhooks: a real receiver on loopback, Standard Webhooks signatures, durable retries.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poem::{EndpointExt as _, Request, Route, handler, http::StatusCode as PoemStatus, web::Data};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, Tokens};

pub(crate) const SECRET_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    pub(crate) up: Arc<AtomicBool>,
    /// (webhook-id, accepted, event type)
    seen: Arc<Mutex<Vec<(String, bool, String)>>>,
}

#[handler]
async fn hook(req: &Request, body: String, rx: Data<&Receiver>) -> PoemStatus {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (id, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
    // Verify as a receiver would, from the spec: HMAC-SHA256 over "id.timestamp.body".
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET_KEY);
    let expected = format!("v1,{}", B64.encode(ring::hmac::sign(&key, format!("{id}.{ts}.{body}").as_bytes())));
    assert_eq!(sig, expected, "signature verifies");
    let age = authd::model::now().abs_diff(ts.parse::<u64>().unwrap());
    assert!(age < 60, "fresh timestamp");
    let event: Value = serde_json::from_str(&body).unwrap();
    let up = rx.up.load(Ordering::SeqCst);
    rx.seen.lock().unwrap().push((id, up, event["type"].as_str().unwrap().to_owned()));
    if up { PoemStatus::NO_CONTENT } else { PoemStatus::SERVICE_UNAVAILABLE }
}

pub(crate) async fn start_receiver() -> (String, Receiver) {
    let rx = Receiver::default();
    let addr = crate::support::serve_fake(Route::new().at("/hook", poem::post(hook)).data(rx.clone())).await;
    (format!("http://{addr}/hook"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_durable_and_delivered_once() {
    let (url, rx) = start_receiver().await;
    let secret = format!("whsec_{}", B64.encode(SECRET_KEY));
    let app = TestApp::spawn_with(|c| {
        c.webhooks = vec![authd::config::WebhookConfig {
            url: url.clone(),
            secret: authd::config::Secret(secret.clone()),
            events: vec!["user.registered".into(), "user.logged_out".into(), "refresh.*".into()],
        }];
    })
    .await;

    // The receiver is down: events queue up and are retried.
    app.register("hooked@example.com").await;
    let t = Tokens::from(&app.login("hooked@example.com", PASSWORD).await);
    app.refresh(&t.refresh).await;
    app.refresh(&t.refresh).await; // reuse
    let t = Tokens::from(&app.login("hooked@example.com", PASSWORD).await);
    app.post_auth("/v1/auth/logout", &t.access, &json!({})).await;
    // The worker looks twice a second and sends one at a time: until each has been tried.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = app.svc().webhooks.status(&authd::service::Principal::Operator).await.unwrap();
        if status.troubled.len() == 3 && status.troubled.iter().all(|t| t.3 >= 1) {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "not every delivery was tried: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((status.pending, status.delivered), (3, 0), "{status:?}");
    assert!(status.troubled.iter().all(|t| t.3 >= 1 && t.5.as_deref() == Some("not delivered")), "{status:?}");

    // Survives a restart; delivered once the receiver is back.
    let app = app.restart().await;
    rx.up.store(true, Ordering::SeqCst);
    let mut delivered = 0;
    for _ in 0..100 {
        delivered = app.svc().webhooks.status(&authd::service::Principal::Operator).await.unwrap().delivered;
        if delivered == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(delivered, 3);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let seen = rx.seen.lock().unwrap().clone();
    let accepted: Vec<&(String, bool, String)> = seen.iter().filter(|s| s.1).collect();
    let mut ids: Vec<&str> = accepted.iter().map(|s| s.0.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), accepted.len(), "each id delivered exactly once: {seen:?}");
    let mut types: Vec<&str> = accepted.iter().map(|s| s.2.as_str()).collect();
    types.sort();
    assert_eq!(types, vec!["refresh.reuse_detected", "user.logged_out", "user.registered"]);
    assert!(seen.iter().any(|s| !s.1), "there were failed attempts before");
    // Retries of one message keep its id.
    let first_failed = seen.iter().find(|s| !s.1).unwrap();
    assert!(accepted.iter().any(|s| s.0 == first_failed.0));

    // Masked in `config check`, validated at start.
    let cfg_text = app.cfg.to_toml();
    assert!(!cfg_text.contains(&secret) && cfg_text.contains("********"));
    let mut bad = app.cfg.clone();
    bad.webhooks[0].secret = authd::config::Secret("plain".into());
    assert!(bad.validate().unwrap_err().to_string().contains("webhooks[0].secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_keeps_failing_ends_in_the_audit_log() {
    let (url, _rx) = start_receiver().await;
    let app = TestApp::spawn_with(|c| {
        c.webhooks = vec![authd::config::WebhookConfig {
            url: url.clone(),
            secret: authd::config::Secret(format!("whsec_{}", B64.encode(SECRET_KEY))),
            events: vec!["*".into()],
        }];
        c.webhook_delivery.retry_for = authd::config::HumanDuration::secs(1);
    })
    .await;
    app.register("doomed@example.com").await;
    let mut failed = 0;
    for _ in 0..50 {
        failed = app.svc().webhooks.status(&authd::service::Principal::Operator).await.unwrap().failed;
        if failed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(failed, 1);
    let events =
        app.svc().audit.events(&authd::service::Principal::Operator, Default::default(), None, 50).await.unwrap();
    let e = events.iter().find(|e| e.event == "webhook.failed").expect("final failure audited");
    assert_eq!(e.details["event"], "user.registered");
    assert_eq!(e.details["error"], "not delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_added_at_run_time_receive_events_until_removed() {
    let (url, rx) = start_receiver().await;
    rx.up.store(true, Ordering::SeqCst);
    let app = TestApp::spawn().await;
    let admin = app.admin("hooks-admin@example.com").await;
    let secret = format!("whsec_{}", B64.encode(SECRET_KEY));
    let plain = app.signed_in("no-hooks@example.com").await;
    let r = app.post_auth("/v1/admin/webhooks", &plain.access, &json!({"url": url, "events": ["*"]})).await;
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    let r = app.post_auth("/v1/admin/webhooks", &admin.access, &json!({"url": "ftp://nope", "events": ["*"]})).await;
    assert_eq!(r.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let generated: Value = app
        .post_auth(
            "/v1/admin/webhooks",
            &admin.access,
            &json!({"url": "http://127.0.0.1:9/unused", "events": ["key.rotated"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(generated["secret"].as_str().unwrap().starts_with("whsec_"), "a secret is generated and shown once");

    // Through the CLI (admin socket), with a given secret.
    let args = ["webhooks", "add", &url, "--event", "user.registered", "--secret", &secret];
    let out = crate::support::binary::ok(app.dir.path(), &args, None).await;
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let listed: Vec<Value> = app.get_auth("/v1/admin/webhooks", &admin.access).await.json().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|w| w.get("secret").is_none()));

    app.register("announced@example.com").await;
    let mut delivered = 0;
    for _ in 0..50 {
        delivered = rx.seen.lock().unwrap().iter().filter(|s| s.1 && s.2 == "user.registered").count();
        if delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(delivered, 1, "signed with the endpoint's own secret (the receiver checks)");

    let r =
        app.http.delete(app.url(&format!("/v1/admin/webhooks/{id}"))).bearer_auth(&admin.access).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    app.register("unannounced@example.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.seen.lock().unwrap().len(), 1, "no deliveries after removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_cannot_reach_the_hosts_own_network() {
    let (url, rx) = start_receiver().await;
    rx.up.store(true, Ordering::SeqCst);
    let port = url.trim_start_matches("http://127.0.0.1:").trim_end_matches("/hook").to_owned();
    let app = TestApp::spawn_with(|c| c.webhook_delivery.allow_private_targets = false).await;
    let admin = app.admin("ops@example.com").await;
    let add = async |target: &str| {
        app.post_auth("/v1/admin/webhooks", &admin.access, &json!({"url": target, "events": ["*"]})).await
    };
    for target in [
        url.clone(),
        format!("http://0x7f000001:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
    ] {
        let r = add(&target).await;
        let b = crate::support::assert_problem(r, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(b["errors"][0]["code"], "forbidden_target", "{target}: {b}");
    }
    assert!(app.svc().webhooks.list(&authd::service::Principal::Operator).await.unwrap().is_empty(), "nothing stored");

    // A name is checked when it is resolved, on the addresses connected to.
    let r = add(&format!("http://localhost:{port}/hook")).await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    app.register("trigger@example.com").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = app.svc().webhooks.status(&authd::service::Principal::Operator).await.unwrap();
        if status.troubled.iter().any(|t| t.3 >= 1) {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the delivery was never tried: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(rx.seen.lock().unwrap().is_empty(), "a loopback receiver was reached");
    assert!(!status.troubled.is_empty() && status.troubled.iter().all(|t| t.5.as_deref() == Some("not delivered")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_status_does_not_tell_refused_from_unreachable() {
    // One receiver answers 503, the other port has nobody listening.
    let (answering, _rx) = start_receiver().await;
    let closed = format!("http://127.0.0.1:{}/hook", crate::support::free_port());
    let app = TestApp::spawn().await;
    let admin = app.admin("ops@example.com").await;
    for target in [&answering, &closed] {
        let r = app.post_auth("/v1/admin/webhooks", &admin.access, &json!({"url": target, "events": ["user.*"]})).await;
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    }
    app.register("probe@example.com").await;
    // Both first attempts fail; wait for them (a loaded machine may take a while).
    let both_failed =
        |errors: &[Option<String>]| errors.len() >= 2 && errors.iter().all(|e| e.as_deref() == Some("not delivered"));
    let mut errors = Vec::new();
    for _ in 0..100 {
        let status = app.svc().webhooks.status(&authd::service::Principal::Operator).await.unwrap();
        errors = status.troubled.iter().map(|t| t.5.clone()).collect::<Vec<Option<String>>>();
        if both_failed(&errors) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(both_failed(&errors), "{errors:?}");
    // Each failed attempt is counted, to be tried again.
    let text = app.svc().metrics_text().await.unwrap();
    let retries: f64 = text
        .lines()
        .find(|l| l.starts_with("authd_deliveries_total{") && l.contains("webhook") && l.contains("\"retry\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(retries >= 2.0, "{retries}");
}
