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
    id_tokens::{self, Hint, LogoutNotice},
    issuing::{ClientInfo, permissions_in},
    mfa::{SecondFactor, SecondFactors},
    sessions::Sessions,
    tokens::{Introspection, Tokens, mint_access_token},
};
use crate::{
    error::{Error, Result},
    model::{
        Channel, Client, Consent, DeliveryState, OneTimeSecret, OutboxMessage, Purpose, RefreshRecord, SCOPES, Session,
        User, now, now_millis,
    },
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
    prompt_none: bool,
    prompt_consent: bool,
    /// The user an `id_token_hint` names.
    hint_sub: Option<Uuid>,
    login_hint: Option<String>,
    ui_locales: Option<String>,
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
    pub ui_locales: Option<String>,
    /// Where the answer will go.
    pub redirect_uri: Option<String>,
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
}

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

impl Provider {
    pub(super) fn new(core: Arc<Core>, sessions: Sessions, factors: SecondFactors, tokens: Tokens) -> Self {
        Self { clients: Clients::new(Arc::clone(&core)), core, sessions, factors, tokens }
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

    // ----- authorization -----

    /// An authorization request (GET query or POST form), with the browser session cookie if
    /// any. Only a bad client, redirect URI or request URI gets a page; every other error goes
    /// back to the client.
    pub async fn authorize(
        &self,
        params: std::result::Result<Params, String>,
        cookie: Option<&str>,
    ) -> std::result::Result<Authorized, Refused> {
        let (params, repeated) = match params {
            Ok(p) => (p, None),
            Err(name) => (Params::new(), Some(name)),
        };
        let Some(repeated_or_client) = repeated.clone().or_else(|| param(&params, "client_id").map(str::to_owned))
        else {
            return Err(Refused::UnknownClient);
        };
        if let Some(name) = repeated {
            // Which of the two values to trust cannot be told; nothing is.
            tracing::debug!(param = %name, "authorization request repeats a parameter");
            return Err(Refused::UnknownClient);
        }
        let client = self.clients.find(&repeated_or_client).await?.ok_or(Refused::UnknownClient)?;
        if client.redirect_uris.is_empty() {
            return Err(Refused::UnknownClient);
        }
        // A pushed request stands in for every parameter but the client id (RFC 9126 §4).
        let (params, pushed) = match param(&params, "request_uri") {
            Some(uri) => (self.take_pushed(&client, uri).await?.ok_or(Refused::BadRequestUri)?, true),
            None => (params, false),
        };
        let redirect_uri = match param(&params, "redirect_uri") {
            Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
            Some(_) => return Err(Refused::BadRedirectUri),
            // RFC 6749 §3.1.2.3: may be left out when exactly one is registered.
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(Refused::BadRedirectUri),
        };
        let state = param(&params, "state").map(str::to_owned);
        let req = match self.validate(&client, &params, pushed, redirect_uri.clone()) {
            Ok(r) => r,
            Err(r) => return Ok(self.error_redirect(&redirect_uri, state.as_deref(), &r)),
        };
        let browser = self.browser(cookie).await?;
        Ok(self.decide(req, &client, browser).await?)
    }

    /// Every check of RFC 6749 §4.1.1, RFC 7636 and OIDC Core §3.1.2.1 past the client and its
    /// redirect URI.
    fn validate(
        &self,
        client: &Client,
        p: &Params,
        pushed: bool,
        redirect_uri: String,
    ) -> std::result::Result<AuthRequest, OAuthRefusal> {
        if p.contains_key("request") {
            return Err(refusal("request_not_supported", "request objects are not supported; push the request (PAR)"));
        }
        match param(p, "response_type") {
            None => return Err(refusal("invalid_request", "response_type is missing")),
            Some("code") => {}
            Some(_) => return Err(refusal("unsupported_response_type", "only response_type=code is supported")),
        }
        if client.require_par && !pushed {
            return Err(refusal("invalid_request", "this client must push its authorization requests (PAR)"));
        }
        for (name, max) in
            [("state", MAX_STATE), ("nonce", 512), ("login_hint", 320), ("ui_locales", 64), ("claims", 4096)]
        {
            if p.get(name).is_some_and(|v| v.len() > max) {
                return Err(refusal("invalid_request", format!("{name} is longer than {max} characters")));
            }
        }
        let asked: Vec<&str> = param(p, "scope").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).collect();
        if !asked.contains(&"openid") {
            return Err(refusal("invalid_scope", "scope must include openid"));
        }
        // Scopes the client may not have are left out (RFC 6749 §3.3); the response says which.
        let mut scope: Vec<String> = SCOPES
            .iter()
            .filter(|s| asked.contains(s) && client.scopes.iter().any(|c| c == *s))
            .map(|s| (*s).to_owned())
            .collect();
        if !scope.iter().any(|s| s == "openid") {
            scope.insert(0, "openid".into());
        }
        let challenge = param(p, "code_challenge");
        match (challenge, param(p, "code_challenge_method")) {
            (Some(c), Some("S256")) if pkce_shaped(c) => {}
            (Some(_), Some("S256")) => {
                return Err(refusal("invalid_request", "code_challenge must be 43-128 unreserved characters"));
            }
            (Some(_), _) => return Err(refusal("invalid_request", "code_challenge_method must be S256")),
            (None, Some(_)) => return Err(refusal("invalid_request", "code_challenge_method without code_challenge")),
            (None, None) if client.is_public() => {
                return Err(refusal("invalid_request", "a public client must use PKCE (S256)"));
            }
            (None, None) => {}
        }
        let prompts: Vec<&str> = param(p, "prompt").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).collect();
        if prompts.contains(&"none") && prompts.len() > 1 {
            return Err(refusal("invalid_request", "prompt=none cannot be combined with other values"));
        }
        let t = now();
        let mut fresh_after = None;
        if prompts.contains(&"login") || prompts.contains(&"select_account") {
            fresh_after = Some(t);
        }
        if let Some(age) = param(p, "max_age") {
            let age: u64 =
                age.parse().map_err(|_| refusal("invalid_request", "max_age must be a number of seconds"))?;
            fresh_after = Some(fresh_after.unwrap_or(0).max(t.saturating_sub(age)));
        }
        let hint_sub = match param(p, "id_token_hint") {
            Some(h) => Some(
                id_tokens::read_hint(&self.core, h)
                    .ok_or_else(|| refusal("invalid_request", "id_token_hint is not an ID token of this issuer"))?
                    .sub,
            ),
            None => None,
        };
        // Claims asked for by name are released only within the granted scopes, which is what
        // those scopes release anyway; the parameter is checked, and cannot widen the consent.
        if param(p, "claims").is_some_and(|c| requested_claims(c).is_none()) {
            return Err(refusal("invalid_request", "claims must be a JSON object"));
        }
        Ok(AuthRequest {
            client_id: client.id,
            redirect_uri,
            scope,
            state: param(p, "state").map(str::to_owned),
            nonce: param(p, "nonce").map(str::to_owned),
            code_challenge: challenge.map(str::to_owned),
            fresh_after,
            prompt_none: prompts.contains(&"none"),
            prompt_consent: prompts.contains(&"consent"),
            hint_sub,
            login_hint: param(p, "login_hint").map(str::to_owned),
            ui_locales: param(p, "ui_locales").map(str::to_owned),
            expires_at: t + PENDING_TTL,
        })
    }

    /// Signed in, recently enough, as the hint says, and allowed: a code. Otherwise a page, or
    /// under `prompt=none` the error that says which.
    async fn decide(&self, req: AuthRequest, client: &Client, browser: Option<Browser>) -> Result<Authorized> {
        let signed_in = browser.filter(|b| satisfies(&req, b));
        let Some(b) = signed_in else {
            if req.prompt_none {
                return Ok(self.error_redirect(
                    &req.redirect_uri,
                    req.state.as_deref(),
                    &refusal("login_required", "the user is not signed in"),
                ));
            }
            return Ok(Authorized::Login(self.pending(&req, client)?));
        };
        let consented = client.trusted
            || b.user
                .consents
                .iter()
                .any(|c| c.client_id == client.id && req.scope.iter().all(|s| c.scopes.contains(s)));
        if req.prompt_consent || !consented {
            if req.prompt_none {
                return Ok(self.error_redirect(
                    &req.redirect_uri,
                    req.state.as_deref(),
                    &refusal("consent_required", "the user has not allowed this client"),
                ));
            }
            return Ok(Authorized::Consent(self.pending(&req, client)?));
        }
        self.issue_code(&req, &b).await
    }

    fn pending(&self, req: &AuthRequest, client: &Client) -> Result<Pending> {
        Ok(Pending {
            request: self.seal(SEAL_REQUEST, req)?,
            client_name: client.name.clone(),
            scopes: req.scope.clone(),
            login_hint: req.login_hint.clone(),
            ui_locales: req.ui_locales.clone(),
            redirect_uri: Some(req.redirect_uri.clone()),
        })
    }

    /// Where a pending request's answer will go, if the request is still good.
    pub async fn redirect_uri_of(&self, sealed: &str) -> Option<String> {
        self.reopen(sealed).await.ok().map(|(req, _)| req.redirect_uri)
    }

    /// The request a page carried back, if it is still good, and its client.
    async fn reopen(&self, sealed: &str) -> std::result::Result<(AuthRequest, Client), Refused> {
        let req: AuthRequest = self.open(SEAL_REQUEST, sealed).ok_or(Refused::Stale)?;
        if req.expires_at <= now() {
            return Err(Refused::Stale);
        }
        let client = self.clients.get(req.client_id).await?.ok_or(Refused::UnknownClient)?;
        if !client.redirect_uris.contains(&req.redirect_uri) {
            return Err(Refused::BadRedirectUri);
        }
        // The client's scopes may have been narrowed since the request was made.
        let mut req = req;
        req.scope.retain(|s| s == "openid" || client.scopes.contains(s));
        Ok((req, client))
    }

    /// The client and scopes a pending request shows, for its page.
    pub async fn pending_of(&self, sealed: &str) -> std::result::Result<Pending, Refused> {
        let (req, client) = self.reopen(sealed).await?;
        Ok(self.pending(&req, &client)?)
    }

    /// After the login page: the request goes on with the browser session just opened.
    pub async fn resume(&self, sealed: &str, cookie: Option<&str>) -> std::result::Result<Authorized, Refused> {
        let (mut req, client) = self.reopen(sealed).await?;
        req.prompt_none = false;
        let browser = self.browser(cookie).await?;
        Ok(self.decide(req, &client, browser).await?)
    }

    /// The user's answer on the consent page.
    pub async fn consent(
        &self,
        sealed: &str,
        cookie: Option<&str>,
        allow: bool,
    ) -> std::result::Result<Authorized, Refused> {
        let (mut req, client) = self.reopen(sealed).await?;
        // The consent page answers for a sign-in that meets the request (fresh enough, the
        // user a hint names), never for an older or other one.
        let Some(b) = self.browser(cookie).await?.filter(|b| satisfies(&req, b)) else {
            req.prompt_none = false;
            return Ok(Authorized::Login(self.pending(&req, &client)?));
        };
        if !allow {
            return Ok(self.error_redirect(
                &req.redirect_uri,
                req.state.as_deref(),
                &refusal("access_denied", "the user did not allow this client"),
            ));
        }
        let (user_id, client_id, scopes) = (b.user.id, client.id, req.scope.clone());
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let mut u = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    let mut granted = u
                        .consents
                        .iter()
                        .find(|c| c.client_id == client_id)
                        .map(|c| c.scopes.clone())
                        .unwrap_or_default();
                    for s in &scopes {
                        if !granted.contains(s) {
                            granted.push(s.clone());
                        }
                    }
                    u.consents.retain(|c| c.client_id != client_id);
                    u.consents.push(Consent { client_id, scopes: granted.clone(), at: tx.now() });
                    u.updated_at = tx.now();
                    tx.update_user(&u)?;
                    tx.audit(
                        "consent.granted",
                        Some(user_id),
                        None,
                        json!({"client_id": client_id, "scopes": granted}),
                    )?;
                    Ok(())
                })
            })
            .await?;
        let b = Browser { user: self.core.user(user_id).await?, ..b };
        Ok(self.issue_code(&req, &b).await?)
    }

    async fn issue_code(&self, req: &AuthRequest, b: &Browser) -> Result<Authorized> {
        let grant = CodeGrant {
            id: Uuid::now_v7(),
            expires_at: now() + CODE_TTL,
            client_id: req.client_id,
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scope.join(" "),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            browser_sid: b.session.id,
            user_id: b.user.id,
            auth_time: b.session.authenticated_at(),
            amr: b.session.amr.clone(),
        };
        let code = self.seal(SEAL_CODE, &grant)?;
        let iss = self.issuer();
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = &req.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &iss));
        Ok(Authorized::Redirect(with_query(&req.redirect_uri, &pairs)))
    }

    // ----- pushed authorization requests -----

    /// RFC 9126: checks a request as the authorization endpoint would and keeps it for one use.
    /// Returns the `request_uri` and its lifetime.
    pub async fn push(
        &self,
        presented: &Presented,
        params: Params,
    ) -> Result<std::result::Result<(String, u64), OAuthRefusal>> {
        let client = self.clients.authenticate(presented).await?;
        if param(&params, "client_id").is_some_and(|c| c != client.id.to_string()) {
            return Ok(Err(refusal("invalid_request", "client_id is not the authenticated client")));
        }
        if params.contains_key("request_uri") {
            return Ok(Err(refusal("invalid_request", "request_uri cannot be pushed")));
        }
        let redirect_uri = match param(&params, "redirect_uri") {
            Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            _ => return Ok(Err(refusal("invalid_request", "redirect_uri is not one registered for this client"))),
        };
        if let Err(r) = self.validate(&client, &params, true, redirect_uri) {
            return Ok(Err(r));
        }
        let mut params = params;
        params.retain(|k, _| AUTHORIZATION_PARAMS.contains(&k.as_str()));
        if params.values().map(String::len).sum::<usize>() > 8192 {
            return Ok(Err(refusal("invalid_request", "the request is longer than 8 KiB")));
        }
        let handle = random::new_token();
        let t = now();
        let record = OneTimeSecret {
            id: OneTimeSecret::id_for(Purpose::PushedRequest, Uuid::now_v7()),
            purpose: Purpose::PushedRequest,
            user_id: None,
            token_hash: Some(random::token_hash(&handle).to_vec()),
            code_hash: None,
            target: Some(client.id.to_string()),
            amr: Vec::new(),
            method: None,
            created_at: t,
            expires_at: t + PAR_TTL,
            attempts_left: 1,
            budget_until: t + PAR_TTL,
            sealed: Some(self.seal(SEAL_PUSHED, &params)?),
            issued: None,
        };
        self.core.db(move |s| s.write(|tx| Ok(tx.put_one_time(&record)?))).await?;
        Ok(Ok((format!("{REQUEST_URI_PREFIX}{handle}"), PAR_TTL)))
    }

    /// The pushed request `uri` names, spent by this use; `None` when unknown, spent, expired or
    /// another client's.
    async fn take_pushed(&self, client: &Client, uri: &str) -> Result<Option<Params>> {
        let Some(handle) = uri.strip_prefix(REQUEST_URI_PREFIX).and_then(OpaqueToken::parse) else {
            return Ok(None);
        };
        let hash = handle.hash();
        let client_id = client.id.to_string();
        let record = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let Some(r) = tx.one_time_by_token(&hash)?.filter(|r| r.purpose == Purpose::PushedRequest) else {
                        return Ok(None);
                    };
                    tx.delete_one_time(&r.id)?;
                    Ok(Some(r))
                })
            })
            .await?;
        Ok(record
            .filter(|r| r.expires_at > now() && r.target.as_deref() == Some(client_id.as_str()))
            .and_then(|r| r.sealed)
            .and_then(|s| self.open(SEAL_PUSHED, &s)))
    }

    // ----- the browser session -----

    /// The browser session a cookie names, if it is live and its user active.
    pub async fn browser(&self, cookie: Option<&str>) -> Result<Option<Browser>> {
        let Some(sid) = cookie.and_then(|c| self.open::<Uuid>(SEAL_BROWSER, c)) else { return Ok(None) };
        let found = self
            .core
            .db(move |s| {
                s.read(|tx| {
                    let Some(session) = tx.session(sid)? else { return Ok(None) };
                    let Some(user) = tx.user(session.user_id)? else { return Ok(None) };
                    // A role that now requires a second factor ends what was opened without
                    // one, as a refresh would.
                    let second_factor_due = !session.amr.iter().any(|m| m == "otp")
                        && tx.roles()?.iter().any(|r| r.require_mfa && user.roles.contains(&r.name));
                    Ok((!second_factor_due).then_some((session, user)))
                })
            })
            .await?;
        let t = now();
        Ok(found
            .filter(|(s, u)| s.client_id.is_none() && s.expires_at.min(s.absolute_expires_at) > t && u.is_active())
            .map(|(session, user)| Browser { session, user }))
    }

    fn cookie_for(&self, session_id: Uuid) -> Result<SignIn> {
        Ok(SignIn::Session(self.seal(SEAL_BROWSER, &session_id)?))
    }

    /// The browser session a login through an external provider opened, from its outcome.
    pub fn signed_in_upstream(&self, outcome: Result<super::TokenPair>) -> Result<SignIn> {
        match outcome {
            Ok(pair) => self.cookie_for(pair.session_id),
            Err(Error::MfaRequired(token)) => Ok(SignIn::SecondFactor(token)),
            Err(e) => Err(e),
        }
    }

    /// Seals what the hosted page keeps while the browser is at a provider.
    pub fn seal_upstream(&self, verifier: &str, request: &str) -> Result<String> {
        self.seal(SEAL_UPSTREAM, &(verifier, request, now() + PENDING_TTL))
    }

    /// Opens it again: the PKCE verifier and the pending request.
    pub fn open_upstream(&self, sealed: &str) -> Option<(String, String)> {
        let (verifier, request, until): (String, String, u64) = self.open(SEAL_UPSTREAM, sealed)?;
        (until > now()).then_some((verifier, request))
    }

    /// A password on the hosted login: the same rules as the API's login (throttling,
    /// verification, second factors, disabled accounts).
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        client: ClientInfo,
        solution: Option<super::sessions::ChallengeSolution>,
    ) -> Result<SignIn> {
        match self.sessions.login(login, password, Some("Browser".into()), client, solution).await {
            Ok(pair) => self.cookie_for(pair.session_id),
            Err(Error::MfaRequired(token)) => Ok(SignIn::SecondFactor(token)),
            Err(e) => Err(e),
        }
    }

    /// The second step of the hosted login: a TOTP or recovery code.
    pub async fn sign_in_second_factor(&self, mfa_token: &str, code: &str, client: ClientInfo) -> Result<SignIn> {
        let code = code.trim();
        let factor = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            SecondFactor::Totp(code.to_owned())
        } else {
            SecondFactor::Recovery(code.to_owned())
        };
        let pair = self.factors.login_mfa(mfa_token, factor, client).await?;
        self.cookie_for(pair.session_id)
    }

    // ----- the token endpoint -----

    /// Every grant of the token endpoint.
    pub async fn token(&self, presented: &Presented, grant: Grant, from: ClientInfo) -> Result<Issued> {
        match grant {
            Grant::ClientCredentials => {
                let (access_token, expires_in) = self.clients.token(presented).await?;
                Ok(Issued { access_token, expires_in, refresh_token: None, id_token: None, scope: None })
            }
            Grant::AuthorizationCode { code, redirect_uri, verifier } => {
                let client = self.clients.authenticate(presented).await?;
                self.redeem(client, &code, redirect_uri, verifier, from).await
            }
            Grant::RefreshToken { token } => {
                let client = self.clients.authenticate(presented).await?;
                if client.redirect_uris.is_empty() {
                    return Err(Error::UnauthorizedClient);
                }
                let (pair, session, user) =
                    self.sessions.rotate(&token, from, Some(client.id)).await.map_err(|e| match e {
                        Error::InvalidRefreshToken => Error::InvalidGrant("the refresh token is invalid or expired"),
                        Error::RefreshTokenReused => {
                            Error::InvalidGrant("the refresh token was already used; the session has ended")
                        }
                        Error::SecondFactorRequired => {
                            Error::InvalidGrant("a role of this account now requires a second factor; sign in again")
                        }
                        e => e,
                    })?;
                let id_token = id_tokens::mint_id_token(&self.core, &client, &user, &session, None)?;
                Ok(Issued {
                    access_token: pair.access_token,
                    expires_in: pair.expires_in,
                    refresh_token: Some(pair.refresh_token),
                    id_token: Some(id_token),
                    scope: session.scope,
                })
            }
        }
    }

    /// A code for tokens, in one write: the code is spent and the client's session opened
    /// together. A code presented again ends the session it opened (RFC 6749 §4.1.2).
    async fn redeem(
        &self,
        client: Client,
        code: &str,
        redirect_uri: Option<String>,
        verifier: Option<String>,
        from: ClientInfo,
    ) -> Result<Issued> {
        // Checked before any storage: the code's own seal, client, life, redirect URI and PKCE.
        let grant: CodeGrant = Some(code)
            .filter(|c| c.len() <= MAX_CODE)
            .and_then(|c| self.open(SEAL_CODE, c))
            .ok_or(Error::InvalidGrant("the code is invalid"))?;
        // Another client holding a leaked code gets nothing, not even the power to end what the
        // code issued.
        if grant.client_id != client.id {
            return Err(Error::InvalidGrant("the code is invalid"));
        }
        let refresh = random::new_token();
        let refresh_hash = random::token_hash(&refresh);
        let cfg = Arc::clone(&self.core.cfg);
        let c = client.clone();
        let outcome = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let t = tx.now();
                    let marker_id = OneTimeSecret::id_for(Purpose::AuthorizationCode, grant.id);
                    // Presented again: what it issued ends (RFC 6749 §4.1.2).
                    let reused = |tx: &mut Tx<'_>| -> Result<Exchange> {
                        let issued = tx.one_time(&marker_id)?.and_then(|m| m.issued);
                        if let Some(sid) = issued {
                            tx.revoke_session(sid)?;
                            tx.audit_failure(
                                "oidc.code_reused",
                                Some(grant.user_id),
                                Some(sid),
                                json!({"client_id": c.id}),
                            )?;
                        }
                        Ok(Exchange::Reused)
                    };
                    // Reuse is caught as long as the spent marker lives, past the code's own life.
                    if tx.one_time(&marker_id)?.is_some() {
                        return reused(tx);
                    }
                    if grant.expires_at <= t {
                        return Ok(Exchange::Invalid("the code has expired"));
                    }
                    if redirect_uri.as_deref().is_some_and(|r| r != grant.redirect_uri)
                        || (redirect_uri.is_none() && c.redirect_uris.len() > 1)
                    {
                        return Ok(Exchange::Invalid("redirect_uri is not the one of the authorization request"));
                    }
                    match (&grant.code_challenge, &verifier) {
                        (Some(challenge), Some(v))
                            if pkce_shaped(v) && bool::from(s256(v).as_bytes().ct_eq(challenge.as_bytes())) => {}
                        (Some(_), _) => return Ok(Exchange::Invalid("code_verifier does not match the challenge")),
                        (None, Some(_)) => {
                            return Ok(Exchange::Invalid("a code_verifier for a code issued without a challenge"));
                        }
                        (None, None) => {}
                    }
                    let session_id = Uuid::now_v7();
                    let marker = OneTimeSecret {
                        id: marker_id.clone(),
                        purpose: Purpose::AuthorizationCode,
                        user_id: Some(grant.user_id),
                        token_hash: None,
                        code_hash: None,
                        target: None,
                        amr: Vec::new(),
                        method: None,
                        created_at: t,
                        expires_at: grant.expires_at + SPENT_CODE_TTL,
                        attempts_left: 0,
                        budget_until: 0,
                        sealed: None,
                        issued: Some(session_id),
                    };
                    // Two redemptions at once (two nodes): one claims the code, the other is a reuse.
                    if !tx.claim_one_time(&marker)? {
                        return reused(tx);
                    }
                    let Some(user) = tx.user(grant.user_id)?.filter(User::is_active) else {
                        return Ok(Exchange::Invalid("the code is invalid"));
                    };
                    // The browser session the code came from: this user's, a browser's, still live.
                    let Some(browser) = tx.session(grant.browser_sid)?.filter(|b| {
                        b.user_id == grant.user_id
                            && b.client_id.is_none()
                            && b.expires_at.min(b.absolute_expires_at) > t
                    }) else {
                        return Ok(Exchange::Invalid("the sign-in this code came from has ended"));
                    };
                    let session = Session {
                        id: session_id,
                        user_id: user.id,
                        device_name: Some(c.name.chars().take(100).collect()),
                        user_agent: from.user_agent.map(|a| a.chars().take(300).collect()),
                        ip: from.ip.map(|ip| ip.to_string()),
                        created_at: t,
                        last_used_at: t,
                        expires_at: (t + cfg.tokens.refresh_ttl.as_secs()).min(browser.absolute_expires_at),
                        absolute_expires_at: (t + cfg.tokens.session_max.as_secs()).min(browser.absolute_expires_at),
                        generation: 0,
                        amr: grant.amr,
                        auth_time: grant.auth_time,
                        client_id: Some(c.id),
                        parent: Some(browser.id),
                        scope: Some(grant.scope),
                    };
                    tx.put_session(&session)?;
                    tx.put_refresh(
                        &refresh_hash,
                        &RefreshRecord { session_id: session.id, used: false, expires_at: session.expires_at },
                    )?;
                    tx.audit(
                        "oidc.tokens_issued",
                        Some(user.id),
                        Some(session.id),
                        json!({"client_id": c.id, "scope": session.scope}),
                    )?;
                    let permissions = permissions_in(tx, cfg.tokens.include_permissions, &user.roles)?;
                    Ok(Exchange::Issued(Box::new(user), Box::new(session), refresh, permissions, grant.nonce))
                })
            })
            .await?;
        match outcome {
            Exchange::Issued(user, session, refresh, permissions, nonce) => {
                let (access_token, expires_in) = mint_access_token(&self.core, &user, &session, permissions)?;
                let id_token = id_tokens::mint_id_token(&self.core, &client, &user, &session, nonce)?;
                Ok(Issued {
                    access_token,
                    expires_in,
                    refresh_token: Some(refresh),
                    id_token: Some(id_token),
                    scope: session.scope.clone(),
                })
            }
            Exchange::Reused => {
                tracing::warn!(client_id = %client.id, "authorization code presented again; its session ended");
                Err(Error::InvalidGrant("the code was already used; what it issued is revoked"))
            }
            Exchange::Invalid(why) => Err(Error::InvalidGrant(why)),
        }
    }

    // ----- UserInfo, revocation, introspection -----

    /// OIDC Core §5.3: the claims the access token's scopes release.
    pub async fn userinfo(&self, token: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        let ctx = self.tokens.authenticate(token).map_err(Error::InvalidToken)?;
        let scope = ctx.claims.scope.clone().unwrap_or_default();
        if ctx.claims.azp.is_none() || !scope.split(' ').any(|s| s == "openid") {
            return Err(Error::InsufficientScope);
        }
        // Served from memory when cached, as `GET /v1/me` is: the token check already refused
        // what was revoked, and every user write refreshes the cache.
        let uid = ctx.user_id;
        let user = match self.core.store.cached_user(uid) {
            Some(u) => u,
            None => self
                .core
                .db(move |s| s.load_user(uid).map_err(Error::from))
                .await?
                .ok_or(Error::InvalidToken(crate::error::TokenError::Revoked))?,
        };
        if !user.is_active() {
            return Err(Error::InvalidToken(crate::error::TokenError::Revoked));
        }
        let mut out = serde_json::Map::new();
        out.insert("sub".into(), json!(user.id));
        out.extend(id_tokens::profile_claims(&user, &scope));
        Ok(out)
    }

    /// RFC 7009: ends the session of a refresh or access token the client holds; anything else
    /// is quietly ignored.
    pub async fn revoke(&self, presented: &Presented, token: &str) -> Result<()> {
        let client = self.clients.authenticate(presented).await?;
        let sid = match self.session_of(&client, token).await? {
            Some(sid) => sid,
            None => return Ok(()),
        };
        let client_id = client.id;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    if let Some(session) = tx.session(sid)? {
                        tx.audit(
                            "oidc.token_revoked",
                            Some(session.user_id),
                            Some(sid),
                            json!({"client_id": client_id}),
                        )?;
                        tx.revoke_session(sid)?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// The session of a token issued to `client`.
    async fn session_of(&self, client: &Client, token: &str) -> Result<Option<Uuid>> {
        if token.contains('.') {
            return Ok(self
                .tokens
                .authenticate(token)
                .ok()
                .filter(|ctx| ctx.claims.azp == Some(client.id))
                .map(|ctx| ctx.session_id));
        }
        let Some(t) = OpaqueToken::parse(token) else { return Ok(None) };
        let hash = t.hash();
        let id = client.id;
        self.core
            .db(move |s| {
                s.read(|tx| {
                    let Some(rec) = tx.refresh(&hash)? else { return Ok(None) };
                    Ok(tx.session(rec.session_id)?.filter(|s| s.client_id == Some(id)).map(|s| s.id))
                })
            })
            .await
    }

    /// RFC 7662 for a client: only its own tokens are ever active.
    pub async fn introspect(&self, presented: &Presented, token: &str) -> Result<Introspection> {
        let client = self.clients.authenticate(presented).await?;
        if token.contains('.') {
            return Ok(match self.tokens.authenticate(token) {
                Ok(ctx) if ctx.claims.azp == Some(client.id) => Introspection::of_access(&ctx),
                _ => Introspection::default(),
            });
        }
        let Some(t) = OpaqueToken::parse(token) else { return Ok(Introspection::default()) };
        let hash = t.hash();
        let id = client.id;
        let found = self
            .core
            .db(move |s| {
                s.read(|tx| {
                    let Some(rec) = tx.refresh(&hash)? else { return Ok(None) };
                    let Some(session) = tx.session(rec.session_id)?.filter(|s| s.client_id == Some(id)) else {
                        return Ok(None);
                    };
                    Ok(tx.user(session.user_id)?.map(|u| (rec, session, u)))
                })
            })
            .await?;
        let t = now();
        Ok(match found {
            Some((rec, session, user))
                if !rec.used && rec.expires_at > t && session.absolute_expires_at > t && user.is_active() =>
            {
                Introspection {
                    active: true,
                    token_type: Some("refresh_token"),
                    sub: Some(user.id),
                    sid: Some(session.id),
                    exp: Some(rec.expires_at.min(session.absolute_expires_at)),
                    iat: Some(session.last_used_at),
                    client_id: Some(client.id),
                    scope: session.scope,
                    ..Introspection::default()
                }
            }
            _ => Introspection::default(),
        })
    }

    // ----- consents -----

    /// The clients the user allowed, with their names (`None` for a client since removed).
    pub async fn consents(&self, user_id: Uuid) -> Result<Vec<(Consent, Option<String>)>> {
        self.core
            .db(move |s| {
                s.read(|tx| {
                    let user = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    let mut out = Vec::new();
                    for c in user.consents {
                        let name = tx.client(c.client_id)?.map(|c| c.name);
                        out.push((c, name));
                    }
                    Ok(out)
                })
            })
            .await
    }

    /// Takes back the user's consent to a client and ends the client's sessions of this user:
    /// the next sign-in there asks again.
    pub async fn revoke_consent(&self, user_id: Uuid, client_id: Uuid) -> Result<()> {
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let mut user = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    if !user.consents.iter().any(|c| c.client_id == client_id) {
                        return Err(Error::NotFound("consent"));
                    }
                    user.consents.retain(|c| c.client_id != client_id);
                    user.updated_at = tx.now();
                    tx.update_user(&user)?;
                    let ended: Vec<Uuid> = tx
                        .sessions_of(user_id)?
                        .into_iter()
                        .filter(|s| s.client_id == Some(client_id))
                        .map(|s| s.id)
                        .collect();
                    tx.revoke_sessions(&ended)?;
                    tx.audit(
                        "consent.revoked",
                        Some(user_id),
                        None,
                        json!({"client_id": client_id, "sessions_ended": ended.len()}),
                    )?;
                    Ok(())
                })
            })
            .await
    }

    // ----- logout -----

    /// RP-initiated logout (OIDC RP-Initiated Logout §2). `confirmed` when the user pressed the
    /// button of our confirmation page.
    pub async fn end_session(
        &self,
        params: &Params,
        cookie: Option<&str>,
        confirmed: bool,
    ) -> std::result::Result<LoggedOut, Refused> {
        let hint: Option<Hint> = match param(params, "id_token_hint") {
            Some(h) => Some(id_tokens::read_hint(&self.core, h).ok_or(Refused::BadHint)?),
            None => None,
        };
        let named = param(params, "client_id");
        if let (Some(h), Some(c)) = (&hint, named)
            && h.aud.to_string() != c
        {
            return Err(Refused::BadHint);
        }
        let client = match (&hint, named) {
            (Some(h), _) => self.clients.get(h.aud).await?,
            (None, Some(c)) => self.clients.find(c).await?,
            (None, None) => None,
        };
        let back_to = match param(params, "post_logout_redirect_uri") {
            Some(uri) => match &client {
                Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => Some(uri.to_owned()),
                _ => return Err(Refused::BadRedirectUri),
            },
            None => None,
        };
        let browser = self.browser(cookie).await?;
        let Some(hint) = hint else {
            if !confirmed {
                return Ok(LoggedOut::Confirm);
            }
            if let Some(b) = browser {
                self.end_browser_session(b.user.id, b.session.id).await?;
            }
            return Ok(LoggedOut::Done);
        };
        // An ID token alone is no proof of being that browser: anyone who saw one could sign
        // the user out. Without this browser's own session, the user confirms first.
        let this_browser = browser.as_ref().is_some_and(|b| b.session.id == hint.sid);
        if !this_browser && !confirmed {
            return Ok(LoggedOut::Confirm);
        }
        self.end_browser_session(hint.sub, hint.sid).await?;
        if let Some(b) = browser.filter(|b| b.session.id != hint.sid) {
            self.end_browser_session(b.user.id, b.session.id).await?;
        }
        Ok(match back_to {
            Some(uri) => {
                let mut pairs = Vec::new();
                if let Some(s) = param(params, "state") {
                    pairs.push(("state", s));
                }
                LoggedOut::Redirect(with_query(&uri, &pairs))
            }
            None => LoggedOut::Done,
        })
    }

    /// Ends a browser session and every relying party's session under it, and queues a
    /// back-channel logout for each of those clients that asked for one.
    async fn end_browser_session(&self, user_id: Uuid, sid: Uuid) -> Result<()> {
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let ended = end_with_children(tx, user_id, sid)?;
                    if ended > 0 {
                        tx.audit("user.logged_out", Some(user_id), Some(sid), json!({"client_sessions": ended - 1}))?;
                    }
                    Ok(())
                })
            })
            .await?;
        tracing::info!(event = "logout", user_id = %user_id, session_id = %sid, "browser session ended");
        Ok(())
    }
}

/// Does the browser session `b` meet the request: signed in recently enough, as the user an
/// `id_token_hint` names?
fn satisfies(req: &AuthRequest, b: &Browser) -> bool {
    req.fresh_after.is_none_or(|t| b.session.authenticated_at() >= t) && req.hint_sub.is_none_or(|sub| sub == b.user.id)
}

/// Ends session `sid` of the user and, when it is a browser session, every relying party's
/// session under it, queueing their back-channel logouts: what ending any one session calls, so
/// that a browser session ended from the sessions list takes its clients' sessions along.
/// Returns how many sessions ended.
pub(super) fn end_with_children(tx: &mut Tx<'_>, user_id: Uuid, sid: Uuid) -> Result<usize> {
    let sessions = tx.sessions_of(user_id)?;
    if !sessions.iter().any(|s| s.id == sid) {
        return Ok(0);
    }
    let children: Vec<&Session> = sessions.iter().filter(|s| s.parent == Some(sid)).collect();
    queue_logouts(tx, user_id, sid, &children)?;
    let mut ended: Vec<Uuid> = children.iter().map(|s| s.id).collect();
    ended.push(sid);
    Ok(tx.revoke_sessions(&ended)?)
}

/// Queues a back-channel logout for each client of `children` (the relying parties' sessions
/// under browser session `sid`) that asked for one.
pub(super) fn queue_logouts(tx: &mut Tx<'_>, user_id: Uuid, sid: Uuid, children: &[&Session]) -> Result<()> {
    let mut notified = Vec::new();
    for child in children {
        let Some(cid) = child.client_id else { continue };
        if notified.contains(&cid) {
            continue;
        }
        notified.push(cid);
        let Some(uri) = tx.client(cid)?.and_then(|c| c.backchannel_logout_uri) else { continue };
        let notice = LogoutNotice { client_id: cid, sub: user_id, sid, jti: Uuid::now_v7() };
        let now_ms = now_millis();
        tx.emit(&OutboxMessage {
            id: notice.jti,
            channel: Channel::Logout,
            url: uri,
            endpoint_id: None,
            event: "backchannel_logout".into(),
            payload: serde_json::to_string(&notice).map_err(|e| Error::Internal(e.to_string()))?,
            created_ms: now_ms,
            next_attempt_ms: now_ms,
            attempts: 0,
            state: DeliveryState::Pending,
            last_error: None,
        })?;
    }
    Ok(())
}

/// The claim names a `claims` request parameter asks for (OIDC Core §5.5); `None` when it is
/// not a JSON object.
fn requested_claims(raw: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let o = v.as_object()?;
    let mut out = Vec::new();
    for part in ["userinfo", "id_token"] {
        if let Some(members) = o.get(part) {
            for k in members.as_object()?.keys().take(32) {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn a_repeated_parameter_is_refused_and_claims_are_read_by_name() {
        let pairs = vec![("a".to_string(), "1".to_string()), ("a".to_string(), "2".to_string())];
        assert_eq!(params_of(pairs), Err("a".to_string()));
        let claims =
            requested_claims(r#"{"userinfo":{"email":null},"id_token":{"email":{"essential":true},"acr":null}}"#);
        assert_eq!(claims, Some(vec!["email".to_string(), "acr".to_string()]));
        assert_eq!(requested_claims("[1]"), None);
    }

    #[test]
    fn query_pairs_are_appended_to_a_redirect_uri_that_has_some() {
        let u = with_query("https://app.example/cb?x=1", &[("code", "a b"), ("state", "s&t")]);
        assert_eq!(u, "https://app.example/cb?x=1&code=a+b&state=s%26t");
    }
}
