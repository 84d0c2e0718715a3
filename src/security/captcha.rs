//! Third-party CAPTCHAs (Turnstile, hCaptcha, reCAPTCHA): the response token a login page got
//! from the widget is checked with the provider's siteverify endpoint. All three take the same
//! form (`secret`, `response`, `remoteip`) and answer JSON with a `success` boolean.

use std::{net::IpAddr, time::Duration};

use crate::error::ChallengeError;

/// The longest widget response token accepted.
pub const RESPONSE_MAX_LEN: usize = 4096;

pub struct CaptchaVerifier {
    http: reqwest::Client,
    url: String,
    secret: String,
}

impl CaptchaVerifier {
    pub fn new(url: &str, secret: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, url: url.to_owned(), secret: secret.to_owned() })
    }

    /// Accepted only on an explicit `success: true`; any failure to ask is a refusal.
    pub async fn verify(&self, response: &str, ip: Option<IpAddr>) -> Result<(), ChallengeError> {
        if response.is_empty() || response.len() > RESPONSE_MAX_LEN {
            return Err(ChallengeError::Captcha);
        }
        let ip = ip.map(|i| i.to_string());
        let mut form = vec![("secret", self.secret.as_str()), ("response", response)];
        if let Some(ip) = ip.as_deref() {
            form.push(("remoteip", ip));
        }
        let answer = async {
            let r = self.http.post(&self.url).form(&form).send().await.ok()?;
            let body = r.bytes().await.ok()?;
            serde_json::from_slice::<serde_json::Value>(&body).ok()
        }
        .await;
        match answer {
            Some(v) if v.get("success") == Some(&serde_json::Value::Bool(true)) => Ok(()),
            Some(_) => Err(ChallengeError::Captcha),
            None => {
                tracing::warn!("the CAPTCHA provider could not be asked; refusing the attempt");
                Err(ChallengeError::Captcha)
            }
        }
    }
}
