//! An SMS gateway on loopback that takes only messages signed as Standard Webhooks with its key,
//! and keeps them for the test to read.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poem::{EndpointExt as _, Request, Route, handler, http::StatusCode, web::Data};
use serde_json::Value;

const KEY: &[u8] = b"sms-gateway-key-0123456789abcdef";

#[derive(Clone)]
pub struct SmsGateway {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
}

#[handler]
async fn receive(req: &Request, body: String, seen: Data<&Arc<Mutex<Vec<Value>>>>) -> StatusCode {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (id, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY);
    let expected = format!("v1,{}", B64.encode(ring::hmac::sign(&key, format!("{id}.{ts}.{body}").as_bytes())));
    if sig != expected {
        return StatusCode::UNAUTHORIZED;
    }
    seen.lock().unwrap().push(serde_json::from_str(&body).unwrap());
    StatusCode::NO_CONTENT
}

impl SmsGateway {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let addr = super::serve_fake(Route::new().at("/sms", poem::post(receive)).data(Arc::clone(&seen))).await;
        Self { url: format!("http://{addr}/sms"), seen }
    }

    /// Points a configuration's SMS at this gateway, with its key.
    pub fn configure(&self, cfg: &mut authd::config::Config) {
        cfg.sms.transport = authd::config::SmsTransport::Gateway;
        cfg.sms.gateway_url = Some(self.url.clone());
        cfg.sms.secret = Some(authd::config::Secret(format!("whsec_{}", B64.encode(KEY))));
    }

    /// Waits (up to 10 s) for the `n`th message (1-based) to `to`.
    pub async fn nth_to(&self, to: &str, n: usize) -> Value {
        for _ in 0..200 {
            let found: Vec<Value> = self.seen.lock().unwrap().iter().filter(|m| m["to"] == to).cloned().collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no SMS #{n} to {to}");
    }
}
