//! Login with external providers: OpenID Connect (discovery, JWKS, ID tokens) and OAuth 2 with
//! GitHub's, Facebook's or any provider's user API. The only code that speaks to providers.

mod jwk;
mod oidc;
mod userinfo;

use std::{collections::BTreeMap, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};

use crate::config::{ProviderConfig, ProviderKind};
pub use oidc::Oidc;

/// Why a provider step failed; each maps to an `error=` the application sees.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Down, slow (timed out) or answering nonsense.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// It refused the code (invalid, expired or used).
    #[error("the provider refused the code: {0}")]
    Refused(String),
    /// The ID token fails a check.
    #[error("the ID token is not acceptable: {0}")]
    BadIdToken(&'static str),
    /// Its user info lacks a subject.
    #[error("the provider's user info is unusable: {0}")]
    BadUserInfo(&'static str),
}

impl ProviderError {
    /// The `error` parameter the application's redirect gets.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Unavailable(_) => "temporarily_unavailable",
            ProviderError::Refused(_) => "invalid_grant",
            ProviderError::BadIdToken(_) => "invalid_id_token",
            ProviderError::BadUserInfo(_) => "invalid_user_info",
        }
    }
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalUser {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// When the user last authenticated at the provider: only an ID token says.
    pub auth_time: Option<u64>,
}

/// What a login needs to carry from start to callback.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    /// RFC 7636 S256.
    pub fn new() -> Self {
        let verifier = crate::security::random::new_token();
        Self { challenge: Self::s256(&verifier), verifier }
    }

    /// `BASE64URL(SHA-256(verifier))`, the S256 challenge of a verifier (RFC 7636 §4.2).
    pub fn s256(verifier: &str) -> String {
        B64.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
    }

    /// Is `verifier` a well-formed verifier (RFC 7636 §4.1: 43 to 128 unreserved characters)
    /// whose S256 challenge is `challenge`? Compared in constant time.
    pub fn answers(challenge: &str, verifier: &str) -> bool {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        well_formed && bool::from(subtle::ConstantTimeEq::ct_eq(Self::s256(verifier).as_bytes(), challenge.as_bytes()))
    }

    /// Is `challenge` what an S256 challenge looks like: 43 characters of base64url (32 bytes)?
    pub fn is_s256_challenge(challenge: &str) -> bool {
        challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// One configured provider, ready to use.
pub struct Provider {
    pub name: String,
    pub cfg: ProviderConfig,
    oidc: Option<Oidc>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.name).field("kind", &self.cfg.kind).finish_non_exhaustive()
    }
}

/// The token endpoint's answer.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    pub access_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
}

impl Provider {
    /// Whether the provider says when the user authenticated (an ID token's `auth_time`), so
    /// that a login it answers can be known to be fresh.
    pub fn tells_auth_time(&self) -> bool {
        self.oidc.is_some()
    }

    pub fn display_name(&self) -> String {
        self.cfg.display_name.clone().unwrap_or_else(|| self.name.clone())
    }

    /// The issuer it must name in `iss` (OpenID Connect, RFC 9207).
    pub fn issuer(&self) -> Option<String> {
        self.cfg.issuer()
    }

    /// Where to send the browser.
    pub async fn authorize_url(
        &self,
        callback: &str,
        state: &str,
        nonce: &str,
        pkce: &Pkce,
        max_age: Option<u64>,
        prompt_login: bool,
    ) -> Result<String, ProviderError> {
        let endpoint = match &self.oidc {
            Some(o) => o.discovery().await?.authorization_endpoint,
            None => self.cfg.endpoints().0.unwrap_or_default(),
        };
        let mut url =
            url::Url::parse(&endpoint).map_err(|e| ProviderError::Unavailable(format!("authorize URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.cfg.client_id)
                .append_pair("redirect_uri", callback)
                .append_pair("scope", &self.cfg.scopes().join(" "))
                .append_pair("state", state)
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256");
            if self.oidc.is_some() {
                q.append_pair("nonce", nonce);
            }
            // A fresh login asked of authd is asked of the provider too (OIDC Core §3.1.2.1); its
            // ID token's auth_time then says whether it did ask.
            if let Some(age) = max_age {
                q.append_pair("max_age", &age.to_string());
            }
            if prompt_login {
                q.append_pair("prompt", "login");
            }
        }
        Ok(url.into())
    }

    /// Exchanges the code (with the PKCE verifier), authenticating as the provider accepts.
    pub async fn exchange(&self, code: &str, callback: &str, verifier: &str) -> Result<Tokens, ProviderError> {
        let (endpoint, basic) = match &self.oidc {
            Some(o) => {
                let d = o.discovery().await?;
                (d.token_endpoint.clone(), d.prefers_basic_auth())
            }
            // GitHub and Facebook document the secret in the form; RFC 6749 servers must take Basic.
            None => (self.cfg.endpoints().1.unwrap_or_default(), self.cfg.kind == ProviderKind::Oauth2),
        };
        let secret = self.cfg.client_secret.as_ref().map(|s| s.0.clone()).unwrap_or_default();
        let mut form: BTreeMap<&str, &str> = BTreeMap::from([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", callback),
            ("code_verifier", verifier),
        ]);
        let mut req = self.http.post(&endpoint).header("accept", "application/json");
        if basic {
            // RFC 6749 §2.3.1: both parts form-encoded before base64.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&self.cfg.client_id), Some(enc(&secret)));
        } else {
            form.insert("client_id", &self.cfg.client_id);
            form.insert("client_secret", &secret);
        }
        let resp = req.form(&form).send().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!("token endpoint answered {status}")));
        }
        if !status.is_success() {
            return Err(ProviderError::Refused(format!("token endpoint answered {status}")));
        }
        // GitHub answers 200 with {"error": …} for a bad code.
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| ProviderError::Unavailable("token response is not JSON".into()))?;
        if v.get("error").is_some() {
            return Err(ProviderError::Refused(v["error"].as_str().unwrap_or("error").to_owned()));
        }
        serde_json::from_value(v).map_err(|_| ProviderError::Unavailable("token response is malformed".into()))
    }

    /// Checks what came back and says who signed in: the ID token for OpenID Connect (then its
    /// claims, completed from the user info endpoint when it leaves the email out), the user
    /// API otherwise.
    pub async fn identify(&self, tokens: &Tokens, nonce: &str) -> Result<ExternalUser, ProviderError> {
        match &self.oidc {
            Some(o) => {
                let id_token = tokens.id_token.as_deref().ok_or(ProviderError::BadIdToken("no id_token"))?;
                let claims = o.verify(id_token, &self.cfg.client_id, nonce).await?;
                let mut user = ExternalUser {
                    subject: claims.sub,
                    email: claims.email,
                    email_verified: claims.email_verified,
                    name: claims.name,
                    auth_time: claims.auth_time,
                };
                if user.email.is_none()
                    && let (Some(at), Some(endpoint)) = (&tokens.access_token, o.discovery().await?.userinfo_endpoint)
                {
                    let info = userinfo::fetch(&self.http, &endpoint, at).await?;
                    // The user info must be about the same subject (OIDC Core §5.3.2).
                    if info.get("sub").and_then(|s| s.as_str()) == Some(user.subject.as_str()) {
                        user.email = info.get("email").and_then(|e| e.as_str()).map(str::to_owned);
                        user.email_verified = userinfo::truthy(info.get("email_verified"));
                    }
                }
                Ok(user)
            }
            None => {
                let at = tokens.access_token.as_deref().ok_or(ProviderError::Refused("no access_token".into()))?;
                userinfo::identify(&self.http, &self.cfg, at).await
            }
        }
    }
}

/// Every configured provider, by name.
#[derive(Debug, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Provider>,
}

impl Providers {
    pub fn new(cfg: &BTreeMap<String, ProviderConfig>, timeout: Duration) -> Result<Self, String> {
        if cfg.is_empty() {
            // No client: building one loads TLS roots and code an idle server would keep.
            return Ok(Self::default());
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("oauth: {e}"))?;
        let by_name = cfg
            .iter()
            .map(|(name, p)| {
                let oidc = p.issuer().filter(|_| p.is_oidc()).map(|issuer| Oidc::new(issuer, http.clone()));
                (name.clone(), Provider { name: name.clone(), cfg: p.clone(), oidc, http: http.clone() })
            })
            .collect();
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.by_name.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Provider> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::Pkce;

    #[test]
    fn s256_follows_rfc_7636_appendix_b_and_refuses_what_does_not_answer() {
        let (verifier, challenge) =
            ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(Pkce::s256(verifier), challenge);
        assert!(Pkce::is_s256_challenge(challenge));
        assert!(Pkce::answers(challenge, verifier));
        for (wrong, why) in [
            ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", "another verifier"),
            ("", "empty"),
            ("short", "shorter than 43 characters"),
            (&"a".repeat(129), "longer than 128 characters"),
            ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX+", "a character outside the unreserved set"),
        ] {
            assert!(!Pkce::answers(challenge, wrong), "{why}");
        }
        let fresh = Pkce::new();
        assert!(Pkce::answers(&fresh.challenge, &fresh.verifier));
        for bad in ["", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"] {
            assert!(!Pkce::is_s256_challenge(bad), "{bad}");
        }
    }
}
