//! User APIs of providers that are not OpenID Connect: GitHub (`/user`, and `/user/emails`
//! where only verified addresses count), Facebook's Graph `/me`, and any OAuth 2 provider with a
//! claim mapping.

use serde_json::Value;

use super::{ExternalUser, ProviderError};
use crate::config::{ProviderConfig, ProviderKind};

/// `true`, or the string "true" some providers send.
pub fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if s == "true")
}

pub async fn fetch(http: &reqwest::Client, url: &str, access_token: &str) -> Result<Value, ProviderError> {
    let r = http
        .get(url)
        .bearer_auth(access_token)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
    if r.status().is_server_error() {
        return Err(ProviderError::Unavailable(format!("user info answered {}", r.status())));
    }
    if !r.status().is_success() {
        return Err(ProviderError::Refused(format!("user info answered {}", r.status())));
    }
    let body = r.bytes().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
    serde_json::from_slice(&body).map_err(|_| ProviderError::BadUserInfo("not JSON"))
}

/// A JSON member as text, numbers included (GitHub's ids are numbers).
fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub async fn identify(
    http: &reqwest::Client,
    cfg: &ProviderConfig,
    access_token: &str,
) -> Result<ExternalUser, ProviderError> {
    let (_, _, userinfo, emails) = cfg.endpoints();
    let info = fetch(http, &userinfo.unwrap_or_default(), access_token).await?;
    let user = match cfg.kind {
        ProviderKind::Github => {
            let subject = text(&info, "id").ok_or(ProviderError::BadUserInfo("no id"))?;
            // Only a verified address counts; the primary one first.
            let list = fetch(http, &emails.unwrap_or_default(), access_token).await?;
            let verified: Vec<&Value> =
                list.as_array().map(|a| a.iter().filter(|e| truthy(e.get("verified"))).collect()).unwrap_or_default();
            let pick = verified.iter().find(|e| truthy(e.get("primary"))).or(verified.first());
            ExternalUser {
                subject,
                email: pick.and_then(|e| text(e, "email")),
                email_verified: pick.is_some(),
                name: text(&info, "name").or_else(|| text(&info, "login")),
                auth_time: None,
            }
        }
        ProviderKind::Facebook => ExternalUser {
            subject: text(&info, "id").ok_or(ProviderError::BadUserInfo("no id"))?,
            email: text(&info, "email"),
            // Facebook says nothing of verification: never trusted for linking.
            email_verified: false,
            name: text(&info, "name"),
            auth_time: None,
        },
        _ => {
            let m = &cfg.claims;
            ExternalUser {
                subject: text(&info, &m.subject).ok_or(ProviderError::BadUserInfo("no subject"))?,
                email: text(&info, &m.email),
                email_verified: truthy(info.get(&m.email_verified)),
                name: text(&info, &m.name),
                auth_time: None,
            }
        }
    };
    if user.subject.len() > 255 {
        return Err(ProviderError::BadUserInfo("subject too long"));
    }
    Ok(ExternalUser { email: user.email.map(|e| e.trim().to_lowercase()), ..user })
}
