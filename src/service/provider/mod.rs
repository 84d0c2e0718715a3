//! authd as an OpenID Provider: authorization requests (pushed or not), the browser session of
//! the hosted login, consent, codes, the token grants, UserInfo, revocation, introspection and
//! logout (RP-initiated and back-channel).
//!
//! A request waiting for a login or a consent travels sealed with the data key, so nothing is
//! written until a code is issued. The token endpoint for a code makes one write: the code is
//! marked spent and the relying party's session opened in the same transaction.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::{
    clients::{Clients, Presented},
    core::Core,
    db::Tx,
    id_tokens::{self, Hint},
    issuing::{ClientInfo, permissions_in},
    mfa::{SecondFactor, SecondFactors},
    sessions::Sessions,
    tokens::{AuthContext, Introspection, Tokens, mint_access_token},
};
use crate::{
    error::{Error, Result},
    model::{Client, Consent, OneTimeSecret, Purpose, RefreshRecord, SCOPES, Session, User, now},
    security::{random, token::OpaqueToken},
};

/// How long an authorization code lives (at most 60 s, RFC 9700 §4.5 advice is "short").
const CODE_TTL: u64 = 60;
/// The longest code read: a sealed grant with a nonce of 512 characters fits.
const MAX_CODE: usize = 8192;
/// How long a spent code is remembered, so that presenting it again ends what it issued.
const SPENT_CODE_TTL: u64 = 600;
/// How long a pushed request may wait (RFC 9126 §2.2: short-lived).
const PAR_TTL: u64 = 60;
/// How long a login or consent page may stay open before its request must start over.
const PENDING_TTL: u64 = 1800;
/// The longest `state` kept (clients use far less; 128 characters must round-trip intact).
const MAX_STATE: usize = 2048;
/// The parameters of an authorization request that a pushed request may carry; others are
/// dropped, so that a pushed record stays small.
const AUTHORIZATION_PARAMS: [&str; 15] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "id_token_hint",
    "login_hint",
    "acr_values",
    "claims",
    "ui_locales",
];
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
const SEAL_REQUEST: &str = "authorization_request";
const SEAL_BROWSER: &str = "browser_session";
/// The same session, for forward-auth alone (a cookie shared with applications).
const SEAL_FORWARD: &str = "forward_auth_session";
const SEAL_CODE: &str = "authorization_code";
const SEAL_PUSHED: &str = "pushed_request";
const SEAL_UPSTREAM: &str = "hosted_upstream_login";

/// An authorization request that passed every check, waiting for a login or consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuthRequest {
    client_id: Uuid,
    redirect_uri: String,
    scope: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    /// The login must be at least this recent (`prompt=login`, `max_age`).
    fresh_after: Option<u64>,
    /// `prompt=login`: the user must be asked again, whatever the age of the last login.
    #[serde(default)]
    prompt_login: bool,
    prompt_none: bool,
    prompt_consent: bool,
    /// The user an `id_token_hint` names.
    hint_sub: Option<Uuid>,
    login_hint: Option<String>,
    expires_at: u64,
}

/// What redeeming a code grants: the code itself, sealed with the data key, so that issuing one
/// writes nothing. Spending it writes a marker under `id`, in the transaction that opens the
/// client's session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeGrant {
    id: Uuid,
    expires_at: u64,
    client_id: Uuid,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    browser_sid: Uuid,
    user_id: Uuid,
    auth_time: u64,
    amr: Vec<String>,
}

/// Where an authorization request goes next.
#[derive(Debug)]
pub enum Authorized {
    /// The browser goes back to the client: a code, or an error.
    Redirect(String),
    /// The user must sign in first.
    Login(Pending),
    /// The user must allow the client first.
    Consent(Pending),
}

/// A request waiting on a page.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The sealed request the page's form carries back.
    pub request: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub login_hint: Option<String>,
    /// Where the answer will go.
    pub redirect_uri: Option<String>,
    /// The login must be at least this recent (`prompt=login`, `max_age`).
    pub fresh_after: Option<u64>,
    /// `prompt=login` (rather than `max_age` alone).
    pub prompt_login: bool,
}

/// Why an authorization or logout request gets a page of ours instead of a redirect: where
/// the browser would go cannot be trusted.
#[derive(Debug)]
pub enum Refused {
    UnknownClient,
    BadRedirectUri,
    BadRequestUri,
    BadHint,
    /// The request expired or was tampered with.
    Stale,
    Failed(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Failed(e)
    }
}

/// An OAuth error for the client: `error`, and what it means.
#[derive(Debug, Clone)]
pub struct OAuthRefusal {
    pub error: &'static str,
    pub description: String,
}

fn refusal(error: &'static str, description: impl Into<String>) -> OAuthRefusal {
    OAuthRefusal { error, description: description.into() }
}

/// The browser session of the hosted login, as its cookie names it.
#[derive(Debug, Clone)]
pub struct Browser {
    pub session: Session,
    pub user: User,
}

/// The outcome of a password on the hosted login.
pub enum SignIn {
    /// Signed in: the browser session cookie's value.
    Session(String),
    /// A second step is due: the `mfa_token` the next form carries.
    SecondFactor(String),
}

/// A token grant as the token endpoint received it.
pub enum Grant {
    AuthorizationCode { code: String, redirect_uri: Option<String>, verifier: Option<String> },
    RefreshToken { token: String },
    ClientCredentials,
}

/// A token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// Where RP-initiated logout goes next.
#[derive(Debug)]
pub enum LoggedOut {
    /// Signed out; back to the client's registered URI.
    Redirect(String),
    /// Ask the user first (no `id_token_hint`).
    Confirm,
    /// Signed out; show so.
    Done,
}

enum Exchange {
    Issued(Box<User>, Box<Session>, String, Option<Vec<String>>, Option<String>),
    Reused,
    Invalid(&'static str),
}

/// The OpenID Provider.
pub struct Provider {
    core: Arc<Core>,
    clients: Clients,
    sessions: Sessions,
    factors: SecondFactors,
    tokens: Tokens,
    /// Browser sessions read lately, so that an authorization request with a session cookie
    /// reads no storage. Kept far shorter than a revocation is remembered, so that every
    /// revocation while one is here is seen on the way out.
    recent_browsers: crate::cache::Expiring<Uuid, Arc<Session>>,
}

/// How long a browser session read from storage is trusted from memory.
const RECENT_BROWSER_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The parameters of a request, each at most once (RFC 6749 §3.1).
pub type Params = BTreeMap<String, String>;

/// The parameters of a query or form; a repeated one is an error.
pub fn params_of(pairs: impl IntoIterator<Item = (String, String)>) -> std::result::Result<Params, String> {
    let mut out = Params::new();
    for (k, v) in pairs {
        if out.contains_key(&k) {
            return Err(k);
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn param<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// `uri` with `pairs` added to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// RFC 7636 §4.1: 43–128 unreserved characters.
fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

mod authorize;
mod browser;
mod client_calls;
mod consents;
mod grants;
mod logout;
mod pushed;

impl Provider {
    pub(super) fn new(core: Arc<Core>, sessions: Sessions, factors: SecondFactors, tokens: Tokens) -> Self {
        Self {
            clients: Clients::new(Arc::clone(&core)),
            core,
            sessions,
            factors,
            tokens,
            recent_browsers: crate::cache::Expiring::new(100_000, RECENT_BROWSER_TTL),
        }
    }

    /// The issuer: `server.public_url`.
    pub fn issuer(&self) -> String {
        id_tokens::issuer(&self.core)
    }

    fn seal<T: Serialize>(&self, context: &str, value: &T) -> Result<String> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(self.core.data_key.seal(context, &bytes))
    }

    fn open<T: for<'de> Deserialize<'de>>(&self, context: &str, sealed: &str) -> Option<T> {
        let bytes = self.core.data_key.open(context, sealed).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The error response of a request whose redirect URI is trusted.
    fn error_redirect(&self, redirect_uri: &str, state: Option<&str>, r: &OAuthRefusal) -> Authorized {
        let iss = self.issuer();
        let mut pairs = vec![("error", r.error), ("error_description", r.description.as_str())];
        // A state refused for its length is not copied back into a header.
        if let Some(s) = state.filter(|s| s.len() <= MAX_STATE) {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &iss));
        Authorized::Redirect(with_query(redirect_uri, &pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        let pairs = vec![("a".to_string(), "1".to_string()), ("a".to_string(), "2".to_string())];
        assert_eq!(params_of(pairs), Err("a".to_string()));
    }

    #[test]
    fn query_pairs_are_appended_to_a_redirect_uri_that_has_some() {
        let u = with_query("https://app.example/cb?x=1", &[("code", "a b"), ("state", "s&t")]);
        assert_eq!(u, "https://app.example/cb?x=1&code=a+b&state=s%26t");
    }
}
