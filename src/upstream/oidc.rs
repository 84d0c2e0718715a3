//! OpenID Connect: discovery, the provider's keys (re-read when a token names an unknown one),
//! and ID token validation (OIDC Core §3.1.3.7).

use std::time::{Duration, Instant};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::Deserialize;

use super::{ProviderError, jwk::Jwks};

/// The parts of `/.well-known/openid-configuration` we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

impl Discovery {
    /// `client_secret_basic` unless the provider lists methods without it but with
    /// `client_secret_post` (OIDC Discovery: basic is the default when nothing is said).
    pub fn prefers_basic_auth(&self) -> bool {
        match &self.token_endpoint_auth_methods_supported {
            None => true,
            Some(m) => m.iter().any(|m| m == "client_secret_basic") || !m.iter().any(|m| m == "client_secret_post"),
        }
    }
}

/// The claims of an accepted ID token.
#[derive(Debug, Clone)]
pub struct IdClaims {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// When the user last authenticated at the provider, if it says.
    pub auth_time: Option<u64>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Tolerated clock difference with the provider.
const LEEWAY: u64 = 60;
/// Keys are re-read at most this often when a token names an unknown one (tokens come from the
/// provider's token endpoint, so this only spares it a burst).
const REFETCH_EVERY: Duration = Duration::from_secs(1);

struct Known {
    discovery: Discovery,
    jwks: Jwks,
    keys_read: Instant,
}

pub struct Oidc {
    issuer: String,
    http: reqwest::Client,
    known: tokio::sync::Mutex<Option<Known>>,
}

impl Oidc {
    pub fn new(issuer: String, http: reqwest::Client) -> Self {
        Self { issuer, http, known: tokio::sync::Mutex::new(None) }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, ProviderError> {
        let r = self.http.get(url).send().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        if !r.status().is_success() {
            return Err(ProviderError::Unavailable(format!("{url} answered {}", r.status())));
        }
        let body = r.bytes().await.map_err(|e| ProviderError::Unavailable(format!("{url}: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| ProviderError::Unavailable(format!("{url}: {e}")))
    }

    async fn load(&self) -> Result<Known, ProviderError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let discovery: Discovery = self.get_json(&url).await?;
        // OIDC Discovery §4.3: the document must name the issuer it was read from.
        if discovery.issuer.trim_end_matches('/') != self.issuer {
            return Err(ProviderError::Unavailable("the discovery document names another issuer".into()));
        }
        let jwks: Jwks = self.get_json(&discovery.jwks_uri).await?;
        Ok(Known { discovery, jwks, keys_read: Instant::now() })
    }

    pub async fn discovery(&self) -> Result<Discovery, ProviderError> {
        let mut known = self.known.lock().await;
        if known.is_none() {
            *known = Some(self.load().await?);
        }
        known.as_ref().map(|k| k.discovery.clone()).ok_or_else(|| ProviderError::Unavailable("no discovery".into()))
    }

    /// Validates an ID token: signature by a key of the provider's JWKS with an algorithm it
    /// announces (never `none`, never HMAC), `iss`, `aud`, `azp`, `exp`, `iat` and `nonce`.
    pub async fn verify(&self, token: &str, client_id: &str, nonce: &str) -> Result<IdClaims, ProviderError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(ProviderError::BadIdToken("not a compact JWS"));
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(ProviderError::BadIdToken("unreadable header"))?;
        let signature = B64.decode(s).map_err(|_| ProviderError::BadIdToken("unreadable signature"))?;
        let signed = &token[..h.len() + 1 + c.len()];
        let mut known = self.known.lock().await;
        if known.is_none() {
            *known = Some(self.load().await?);
        }
        let Some(k) = known.as_mut() else { return Err(ProviderError::Unavailable("no discovery".into())) };
        let announced = &k.discovery.id_token_signing_alg_values_supported;
        if !super::jwk::ACCEPTED.contains(&header.alg.as_str())
            || (!announced.is_empty() && !announced.contains(&header.alg))
        {
            return Err(ProviderError::BadIdToken("signing algorithm not accepted"));
        }
        // A key we do not know: the provider may have rotated; read its keys again (not too often).
        if k.jwks.find(header.kid.as_deref(), &header.alg).is_none() && k.keys_read.elapsed() > REFETCH_EVERY {
            let jwks: Jwks = self.get_json(&k.discovery.jwks_uri).await?;
            k.jwks = jwks;
            k.keys_read = Instant::now();
        }
        let key =
            k.jwks.find(header.kid.as_deref(), &header.alg).ok_or(ProviderError::BadIdToken("unknown signing key"))?;
        if !key.verify(&header.alg, signed.as_bytes(), &signature) {
            return Err(ProviderError::BadIdToken("signature does not verify"));
        }
        drop(known);
        let claims: serde_json::Value = B64
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(ProviderError::BadIdToken("unreadable claims"))?;
        check_claims(&claims, &self.issuer, client_id, nonce, crate::model::now())
    }
}

fn check_claims(
    c: &serde_json::Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: u64,
) -> Result<IdClaims, ProviderError> {
    let s = |k: &str| c.get(k).and_then(|v| v.as_str());
    if s("iss").map(|i| i.trim_end_matches('/')) != Some(issuer) {
        return Err(ProviderError::BadIdToken("issued by another issuer"));
    }
    let audiences: Vec<&str> = match c.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.as_str()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&client_id) {
        return Err(ProviderError::BadIdToken("meant for another audience"));
    }
    if (audiences.len() > 1 || s("azp").is_some()) && s("azp") != Some(client_id) {
        return Err(ProviderError::BadIdToken("authorized party is another client"));
    }
    let exp = c.get("exp").and_then(|v| v.as_u64()).ok_or(ProviderError::BadIdToken("no exp"))?;
    if exp.saturating_add(LEEWAY) <= now {
        return Err(ProviderError::BadIdToken("expired"));
    }
    let iat = c.get("iat").and_then(|v| v.as_u64()).ok_or(ProviderError::BadIdToken("no iat"))?;
    if iat > now + LEEWAY {
        return Err(ProviderError::BadIdToken("issued in the future"));
    }
    let matches = s("nonce").is_some_and(|n| bool::from(subtle::ConstantTimeEq::ct_eq(n.as_bytes(), nonce.as_bytes())));
    if !matches {
        return Err(ProviderError::BadIdToken("nonce does not match"));
    }
    let sub = s("sub").filter(|s| !s.is_empty() && s.len() <= 255).ok_or(ProviderError::BadIdToken("no sub"))?;
    Ok(IdClaims {
        sub: sub.to_owned(),
        email: s("email").map(|e| e.trim().to_lowercase()),
        email_verified: super::userinfo::truthy(c.get("email_verified")),
        name: s("name").map(str::to_owned),
        auth_time: c.get("auth_time").and_then(seconds),
    })
}

/// A time in seconds, as an integer or (some providers) a number with a fraction.
fn seconds(v: &serde_json::Value) -> Option<u64> {
    // In range, the cast drops only the fraction.
    v.as_u64().or_else(|| v.as_f64().filter(|f| f.is_finite() && (0.0..1e15).contains(f)).map(|f| f as u64))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn good() -> serde_json::Value {
        json!({"iss": "https://op.example", "aud": "client", "exp": 2000, "iat": 1000, "nonce": "n1", "sub": "abc"})
    }

    #[test]
    fn claims_are_checked_one_by_one() {
        let ok = |c: serde_json::Value| check_claims(&c, "https://op.example", "client", "n1", 1500);
        assert_eq!(ok(good()).unwrap().sub, "abc");
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good();
            c[k] = v;
            c
        };
        for (c, why) in [
            (with("iss", json!("https://evil.example")), "issued by another issuer"),
            (with("aud", json!("other")), "meant for another audience"),
            (with("aud", json!(["client", "other"])), "authorized party is another client"),
            (with("exp", json!(1400)), "expired"),
            (with("iat", json!(1700)), "issued in the future"),
            (with("nonce", json!("n2")), "nonce does not match"),
            (with("sub", json!("")), "no sub"),
        ] {
            match ok(c) {
                Err(ProviderError::BadIdToken(r)) => assert_eq!(r, why),
                other => panic!("{why}: {other:?}"),
            }
        }
        assert_eq!(ok(with("auth_time", json!(1200))).unwrap().auth_time, Some(1200));
        assert_eq!(ok(with("auth_time", json!(1200.7))).unwrap().auth_time, Some(1200));
        assert_eq!(ok(with("auth_time", json!("1200"))).unwrap().auth_time, None, "a string says nothing");
        assert_eq!(ok(with("auth_time", json!(-5))).unwrap().auth_time, None);
        let mut multi = with("aud", json!(["client", "other"]));
        multi["azp"] = json!("client");
        assert!(ok(multi).is_ok());
    }
}
