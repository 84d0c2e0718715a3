//! SMS through any HTTP gateway: a JSON `{to, text, kind}` POST signed like our webhooks, so a
//! provider's API or a small relay plugs in. Or the log, for development.

use crate::{
    config::{SmsConfig, SmsTransport, webhook_key},
    security::signature::sign,
};

pub enum SmsSender {
    Log,
    Gateway { http: reqwest::Client, url: String, key: Vec<u8> },
}

impl SmsSender {
    pub fn new(cfg: &SmsConfig) -> Result<Self, String> {
        if cfg.transport == SmsTransport::Log {
            return Ok(SmsSender::Log);
        }
        let url = cfg.gateway_url.clone().ok_or("sms.gateway_url is required")?;
        let key = cfg.secret.as_ref().and_then(|s| webhook_key(&s.0)).ok_or("sms.secret is not a whsec_ secret")?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout.0)
            .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("sms: {e}"))?;
        Ok(SmsSender::Gateway { http, url, key })
    }

    pub fn is_log(&self) -> bool {
        matches!(self, SmsSender::Log)
    }

    /// `id` stays the same across retries, so the gateway can drop duplicates.
    pub async fn send(&self, id: &str, to: &str, text: &str, kind: &str) -> Result<(), String> {
        match self {
            SmsSender::Log => {
                tracing::info!(target: "authd::messages", to, text, kind, "sms (log transport)");
                Ok(())
            }
            SmsSender::Gateway { http, url, key } => {
                let body = serde_json::json!({"to": to, "text": text, "kind": kind}).to_string();
                let ts = crate::model::now();
                let res = http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sign(key, id, ts, &body))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("sms gateway: {e}"))?;
                if res.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("sms gateway answered {}", res.status().as_u16()))
                }
            }
        }
    }
}
