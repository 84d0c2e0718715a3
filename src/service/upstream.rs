//! Login with external providers (authorization code with PKCE, state bound to the browser,
//! nonce; RFC 9700), and the identities it links to accounts.
//!
//! A started login lives in the browser, sealed in the cookie that binds it there, so a start
//! (which anyone may make) writes nothing durable; its `state` is spent once through a claim in
//! fast state, on every node that shares it. The application binds the exchange code to itself
//! with PKCE of its own (RFC 7636, as in Supabase's PKCE flow), so that a code planted in
//! someone else's browser (login CSRF) is useless there.
//!
//! Only an email the provider vouches for is ever a login name: it alone may name a new account,
//! join an existing one (which must have proven it too), or prove an account's email.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde_json::json;
use uuid::Uuid;

use super::{
    authority::{Authority, Principal},
    core::Core,
    db::Tx,
    issuing::{Authn, ClientInfo, TokenPair},
    one_time::{Presented, Shape, Spent, spend_secret},
    outbox::{Outbox, Recipient},
    sessions::Sessions,
    tokens::AuthContext,
    verification::record_proof,
};
use crate::{
    cache::Expiring,
    config::AppPkce,
    error::{Error, FieldError, Result},
    messages::MessageKind,
    model::{Identity, LoginName, NameChannel, OneTimeSecret, OutboxMessage, Purpose, UnixTime, User, now},
    security::{identifiers::Email, random},
    upstream::{ExternalUser, Pkce, Provider, ProviderError},
};

/// How long a started login may take at the provider.
const STATE_TTL: u64 = 600;
/// How long the application has to exchange the code it was sent back with.
const EXCHANGE_TTL: u64 = 60;
/// Tolerated clock difference with a provider, for its `auth_time`.
const AUTH_TIME_LEEWAY: u64 = 60;
/// Spent states this node remembers (each for `STATE_TTL`), whatever the flood.
const SPENT_STATES: u64 = 100_000;

/// What the cookie carries from start to callback, sealed to the `state` and the provider.
#[derive(serde::Serialize, serde::Deserialize)]
struct Started {
    expires_at: UnixTime,
    redirect_uri: String,
    nonce: String,
    verifier: String,
    /// Linking to this signed-in user rather than signing in.
    link_to: Option<Uuid>,
    /// The application's own PKCE challenge (S256), which the exchange must answer.
    app_challenge: Option<String>,
    /// The login must have happened at the provider at or after this (a client asked authd
    /// for a fresh one: `prompt=login`, `max_age`).
    #[serde(default)]
    fresh_after: Option<UnixTime>,
}

/// A client's demand for a fresh login, passed on to a login provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreshLogin {
    /// The login must have happened at or after this (`max_age`, `prompt=login`).
    pub after: Option<UnixTime>,
    /// `prompt=login`: the provider must ask, however recent its own session.
    pub prompt: bool,
}

/// What an exchange code stands for, sealed in its record.
#[derive(serde::Serialize, serde::Deserialize)]
struct Finished {
    outcome: Outcome,
    app_challenge: Option<String>,
    /// When the provider says the user authenticated there; 0 when it did not say.
    #[serde(default)]
    upstream_auth_time: UnixTime,
}

/// Where a finished login leads. The two refusals answer alike; they differ in the audit log.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    SignIn,
    /// An account has the vouched email, but may not be joined by it.
    LinkRequired,
    SignupDisabled,
}

/// Where the browser goes next.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub location: String,
}

/// A provider a login page can offer.
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    pub name: String,
    pub display_name: String,
}

fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = match url::Url::parse(base) {
        Ok(u) => u,
        Err(_) => return base.to_owned(),
    };
    url.query_pairs_mut().extend_pairs(params);
    url.into()
}

/// What a started login's cookie is sealed to: a cookie opens only with its own `state`, at its
/// own provider.
fn state_context(provider: &str, state: &str) -> String {
    format!("oauth_state:{provider}:{state}")
}

fn malformed(field: &str, code: &str, message: &str) -> Error {
    Error::Malformed(vec![FieldError::new(field, code, message)])
}

/// An identity of `who` at `provider`, for `user`.
fn identity_of(user: Uuid, provider: &str, who: &ExternalUser, t: UnixTime, last_login_at: UnixTime) -> Identity {
    Identity {
        id: Uuid::now_v7(),
        user_id: user,
        provider: provider.to_owned(),
        subject: who.subject.clone(),
        email: who.email.clone(),
        email_verified: who.email_verified,
        name: who.name.clone(),
        created_at: t,
        last_login_at,
    }
}

/// The notice an account's owner gets when a provider is linked to it (none without an email).
fn link_notice(outbox: &Outbox, user: &User, provider: &str) -> Result<Option<OutboxMessage>> {
    let Some(address) = user.email.clone() else { return Ok(None) };
    let to = Recipient { address, locale: outbox.locale_of(Some(user), None) };
    outbox.message(MessageKind::IdentityLinked, &to, BTreeMap::from([("provider", provider.to_owned())])).map(Some)
}

/// A login through a provider that vouches for the account's own email proves that email: the
/// provider made the round trip a confirmation link would.
fn prove_email(tx: &mut Tx<'_>, identity: &Identity, vouched: Option<&str>, provider: &str) -> Result<()> {
    let user = identity.user_id;
    let Some(email) = vouched else { return Ok(()) };
    let Some(mut u) = tx.user(user)? else { return Ok(()) };
    if u.email_verified || u.email.as_deref() != Some(email) {
        return Ok(());
    }
    // A round trip through the provider, for this address: a proof like a confirmation's.
    record_proof(tx, &mut u, NameChannel::Email, email.to_owned(), Some(identity.id))?;
    u.updated_at = tx.now();
    tx.update_user(&u)?;
    tx.audit("user.email_verified", Some(user), None, json!({"method": format!("oauth:{provider}")}))?;
    Ok(())
}

/// Login with external providers, and the identities it links.
pub struct Upstream {
    core: Arc<Core>,
    providers: Arc<crate::upstream::Providers>,
    sessions: Sessions,
    outbox: Outbox,
    /// States spent on this node, by hash (beside the shared claim, when there is one).
    spent_states: Expiring<[u8; 32], ()>,
}

impl Upstream {
    pub(super) fn new(
        core: Arc<Core>,
        providers: Arc<crate::upstream::Providers>,
        sessions: Sessions,
        outbox: Outbox,
    ) -> Self {
        let spent_states = Expiring::new(SPENT_STATES, Duration::from_secs(STATE_TTL));
        Self { core, providers, sessions, outbox, spent_states }
    }

    pub(super) fn sweep(&self) {
        self.spent_states.sweep();
    }

    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.providers.all().map(|p| ProviderInfo { name: p.name.clone(), display_name: p.display_name() }).collect()
    }

    /// Where a provider sends the browser back.
    pub fn oauth_callback_url(&self, provider: &str) -> String {
        format!("{}/v1/auth/oauth/{provider}/callback", self.core.public_url())
    }

    /// The provider a login goes to, if `redirect_uri` is one of `oauth.allowed_redirects`,
    /// exactly.
    fn login_target(&self, provider: &str, redirect_uri: &str) -> Result<&Provider> {
        let p = self.providers.get(provider).ok_or(Error::NotFound("provider"))?;
        if !self.core.cfg.oauth.allowed_redirects.iter().any(|r| r == redirect_uri) {
            return Err(Error::InvalidRedirectUri);
        }
        Ok(p)
    }

    /// The application's PKCE challenge (RFC 7636): S256 only, and required unless
    /// `oauth.app_pkce` is `optional`.
    fn app_challenge(&self, challenge: Option<String>, method: Option<String>) -> Result<Option<String>> {
        match (challenge, method.as_deref()) {
            (None, None) if self.core.cfg.oauth.app_pkce == AppPkce::Optional => Ok(None),
            (None, _) => Err(malformed(
                "code_challenge",
                "required",
                "code_challenge is required: BASE64URL(SHA-256(code_verifier)), with code_challenge_method=S256",
            )),
            (Some(_), m) if m != Some("S256") => {
                Err(malformed("code_challenge_method", "unsupported", "code_challenge_method must be S256"))
            }
            (Some(c), _) if !Pkce::is_s256_challenge(&c) => Err(malformed(
                "code_challenge",
                "invalid",
                "code_challenge must be BASE64URL(SHA-256(code_verifier)): 43 characters of base64url",
            )),
            (Some(c), _) => Ok(Some(c)),
        }
    }

    /// Starts a login at `provider`: the provider's authorize URL, and the value of the cookie
    /// that carries the login and binds it to this browser. `redirect_uri` must be one of
    /// `oauth.allowed_redirects`, exactly; `code_challenge` (method S256) binds the exchange to
    /// the application.
    pub async fn oauth_start(
        &self,
        provider: &str,
        redirect_uri: &str,
        code_challenge: Option<String>,
        code_challenge_method: Option<String>,
    ) -> Result<(Redirect, String)> {
        let p = self.login_target(provider, redirect_uri)?;
        let app_challenge = self.app_challenge(code_challenge, code_challenge_method)?;
        self.begin(p, redirect_uri, None, app_challenge, FreshLogin::default()).await
    }

    /// Starts a login at `provider` for the hosted login page, which comes back to authd's own
    /// `/ui/login/upstream` (always allowed: it is no application's) with the page's PKCE
    /// challenge. Where the request asks for a fresh login, the provider is asked for one too,
    /// and only a provider whose answer says when the user authenticated (OpenID Connect) can
    /// give it: `StepUpRequired` otherwise.
    pub async fn hosted_start(
        &self,
        provider: &str,
        challenge: String,
        fresh: FreshLogin,
    ) -> Result<(Redirect, String)> {
        let p = self.providers.get(provider).ok_or(Error::NotFound("provider"))?;
        // A max_age older than any login asks for nothing.
        let fresh = FreshLogin { after: fresh.after.filter(|t| *t > 0), ..fresh };
        if fresh.after.is_some() && !p.tells_auth_time() {
            return Err(Error::StepUpRequired);
        }
        let back = self.hosted_return_url();
        self.begin(p, &back, None, Some(challenge), fresh).await
    }

    /// Starts linking `provider` to the signed-in user of the account page, after a recent
    /// sign-in as for the API; the provider's answer comes back to `/ui/account`.
    pub async fn hosted_link_start(&self, ctx: &AuthContext, provider: &str) -> Result<(Redirect, String)> {
        self.core.require_recent_auth(ctx)?;
        let p = self.providers.get(provider).ok_or(Error::NotFound("provider"))?;
        let back = format!("{}/ui/account", self.core.public_url().trim_end_matches('/'));
        self.begin(p, &back, Some(ctx.user_id), None, FreshLogin::default()).await
    }

    /// Where a login started from the hosted login page comes back to.
    pub fn hosted_return_url(&self) -> String {
        format!("{}/ui/login/upstream", self.core.public_url().trim_end_matches('/'))
    }

    /// Starts linking `provider` to the caller, who must have signed in lately
    /// (`security.step_up_window`): a stolen older token cannot add a way in.
    pub async fn link_start(
        &self,
        ctx: &AuthContext,
        provider: &str,
        redirect_uri: &str,
    ) -> Result<(Redirect, String)> {
        self.core.require_recent_auth(ctx)?;
        let p = self.login_target(provider, redirect_uri)?;
        self.begin(p, redirect_uri, Some(ctx.user_id), None, FreshLogin::default()).await
    }

    async fn begin(
        &self,
        p: &Provider,
        redirect_uri: &str,
        link_to: Option<Uuid>,
        app_challenge: Option<String>,
        fresh: FreshLogin,
    ) -> Result<(Redirect, String)> {
        let (state, nonce, pkce) = (random::new_token(), random::new_token(), Pkce::new());
        let max_age = fresh.after.map(|t| now().saturating_sub(t));
        let location = p
            .authorize_url(&self.oauth_callback_url(&p.name), &state, &nonce, &pkce, max_age, fresh.prompt)
            .await
            .map_err(|e| Error::ProviderUnavailable(e.to_string()))?;
        let started = Started {
            expires_at: now() + STATE_TTL,
            redirect_uri: redirect_uri.to_owned(),
            nonce,
            verifier: pkce.verifier,
            link_to,
            app_challenge,
            fresh_after: fresh.after,
        };
        let body = serde_json::to_vec(&started).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((Redirect { location }, self.core.data_key.seal(&state_context(&p.name, &state), &body)))
    }

    /// Claims `state` for one callback: true the first time within its lifetime, on every node
    /// that shares fast state (Redis), else on this one.
    async fn claim_state(&self, state: &str) -> bool {
        let key = random::token_hash(state);
        if let Some(shared) = &self.core.replay {
            let name = format!("oauth_state:{}", B64.encode(key));
            match shared.claim(&name, Duration::from_secs(STATE_TTL)).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => tracing::warn!(error = %e, "login state replay falls back to this node's memory"),
            }
        }
        self.spent_states.claim(key, ())
    }

    fn oauth_failure(&self, provider: &str, reason: &str, user: Option<Uuid>) {
        self.core.audit_later(self.core.audit_event(
            "user.oauth_failed",
            false,
            user,
            None,
            serde_json::json!({"provider": provider, "reason": reason}),
        ));
    }

    /// The provider's redirect back, with the cookie the start set. Problems with `state`
    /// (spent, expired, not this browser's) answer an error here, since there is no trusted
    /// place to send the browser; everything later goes back to the application as `error=…`,
    /// or with a one-time `code`.
    pub async fn oauth_callback(
        &self,
        provider: &str,
        params: CallbackParams,
        cookie: Option<String>,
    ) -> Result<Redirect> {
        // Single use, whatever happens next: a state presented once is spent, even by a browser
        // that did not start the login (it may have leaked).
        let state = params.state.unwrap_or_default();
        if state.is_empty() || !self.claim_state(&state).await {
            self.oauth_failure(provider, "unknown_state", None);
            return Err(Error::InvalidState);
        }
        let started: Option<Started> = cookie
            .as_deref()
            .and_then(|c| self.core.data_key.open(&state_context(provider, &state), c).ok())
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(started) = started else {
            self.oauth_failure(provider, "state_not_bound_to_browser", None);
            return Err(Error::InvalidState);
        };
        if started.expires_at <= now() {
            self.oauth_failure(provider, "expired_state", None);
            return Err(Error::InvalidState);
        }
        let back = |error: &str| Redirect { location: with_params(&started.redirect_uri, &[("error", error)]) };
        let p = self.providers.get(provider).ok_or(Error::NotFound("provider"))?;
        if let Some(e) = params.error {
            let code = if e == "access_denied" { "access_denied" } else { "provider_error" };
            self.oauth_failure(provider, code, started.link_to);
            return Ok(back(code));
        }
        // RFC 9207: a response naming another issuer is a mix-up.
        if let (Some(iss), Some(expected)) = (params.iss.as_deref(), p.issuer())
            && iss.trim_end_matches('/') != expected
        {
            self.oauth_failure(provider, "issuer_mismatch", started.link_to);
            return Ok(back("invalid_issuer"));
        }
        let Some(code) = params.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
            self.oauth_failure(provider, "no_code", started.link_to);
            return Ok(back("invalid_request"));
        };
        let callback = self.oauth_callback_url(provider);
        let who = match p.exchange(&code, &callback, &started.verifier).await {
            Ok(tokens) => p.identify(&tokens, &started.nonce).await,
            Err(e) => Err(e),
        };
        let who = match who {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(provider, error = %e, "external login failed");
                let reason = match &e {
                    ProviderError::BadIdToken(r) | ProviderError::BadUserInfo(r) => r,
                    _ => e.code(),
                };
                self.oauth_failure(provider, reason, started.link_to);
                return Ok(back(e.code()));
            }
        };
        // Asked for a fresh login, the provider must say it made one: an older auth_time, or
        // none, is a session it kept (a step-up that asked nobody anything).
        if let Some(after) = started.fresh_after
            && who.auth_time.is_none_or(|t| t.saturating_add(AUTH_TIME_LEEWAY) < after)
        {
            self.oauth_failure(provider, "login_not_fresh", started.link_to);
            return Ok(back("login_required"));
        }
        if let Some(user) = started.link_to {
            return match self.link_identity(user, p, &who).await {
                Ok(()) => Ok(Redirect { location: with_params(&started.redirect_uri, &[("linked", provider)]) }),
                Err(Error::Conflict(_)) => {
                    self.oauth_failure(provider, "identity_linked_elsewhere", Some(user));
                    Ok(back("identity_in_use"))
                }
                Err(e) => Err(e),
            };
        }
        let (user_id, outcome) = self.account_for(p, &who).await?;
        let id = OneTimeSecret::id_for(Purpose::OAuthExchange, Uuid::now_v7());
        let issued = self.core.issue_secret(
            id,
            Purpose::OAuthExchange,
            user_id,
            Some(provider.to_owned()),
            EXCHANGE_TTL,
            Shape::TokenOnly,
        );
        let mut secret = issued.secret;
        // What the session will hold of the provider's login time: 0 when it did not say. A login
        // it made on demand counts from the demand (its clock may be behind ours by the leeway).
        let upstream_auth_time = match who.auth_time {
            Some(t) => started.fresh_after.map_or(t, |after| t.max(after)).min(now()),
            None => 0,
        };
        let finished = Finished { outcome, app_challenge: started.app_challenge, upstream_auth_time };
        let body = serde_json::to_vec(&finished).map_err(|e| Error::Internal(e.to_string()))?;
        secret.sealed = Some(self.core.data_key.seal(&secret.id, &body));
        self.core.db(move |s| s.write(|tx| Ok(tx.put_one_time(&secret)?))).await?;
        let code = issued.token.unwrap_or_default();
        Ok(Redirect { location: with_params(&started.redirect_uri, &[("code", code.as_str())]) })
    }

    /// The account an external login leads to: the one the identity is linked to, else one
    /// created or joined as configured, by the email only when the provider vouches for it.
    async fn account_for(&self, p: &Provider, who: &ExternalUser) -> Result<(Option<Uuid>, Outcome)> {
        let (provider, display, who) = (p.name.clone(), p.display_name(), who.clone());
        let (signup, by_email) = (self.core.cfg.oauth.signup, self.core.cfg.oauth.link_by_verified_email);
        let vouched = who
            .email
            .as_deref()
            .filter(|_| who.email_verified)
            .and_then(|e| Email::parse(e).ok())
            .map(Email::into_string);
        let outbox = self.outbox.clone();
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let t = tx.now();
                    if let Some(mut known) = tx.identity(&provider, &who.subject)? {
                        known.last_login_at = t;
                        known.email = who.email.clone();
                        known.email_verified = who.email_verified;
                        tx.put_identity(&known)?;
                        prove_email(tx, &known, vouched.as_deref(), &provider)?;
                        return Ok((Some(known.user_id), Outcome::SignIn));
                    }
                    let holder = match &vouched {
                        Some(e) => tx.user_by_login(LoginName::Email(e))?,
                        None => None,
                    };
                    let (user, notice) = match holder {
                        // Both sides have proven the address: the provider vouches for it, and
                        // the account confirmed it (an account someone registered with another's
                        // address and never confirmed is not theirs to join).
                        Some(u) if by_email && u.email_verified => {
                            let notice = link_notice(&outbox, &u, &display)?;
                            (u, notice)
                        }
                        Some(u) => return Ok((Some(u.id), Outcome::LinkRequired)),
                        None if !signup => return Ok((None, Outcome::SignupDisabled)),
                        None => {
                            // An email the provider does not vouch for stays on the identity,
                            // for display: it never names the account.
                            let u = User {
                                email_verified: vouched.is_some(),
                                email: vouched.clone(),
                                ..User::new(vec!["user".into()], t)
                            };
                            tx.insert_user(&u)?;
                            let method = format!("oauth:{provider}");
                            tx.audit(
                                "user.registered",
                                Some(u.id),
                                None,
                                json!({"roles": ["user"], "method": method}),
                            )?;
                            (u, None)
                        }
                    };
                    tx.put_identity(&identity_of(user.id, &provider, &who, t, t))?;
                    tx.audit("user.identity_linked", Some(user.id), None, json!({"provider": provider}))?;
                    if let Some(n) = &notice {
                        tx.emit(n)?;
                    }
                    Ok((Some(user.id), Outcome::SignIn))
                })
            })
            .await
    }

    /// Links `who` to a signed-in user who asked for it, and tells the owner.
    async fn link_identity(&self, user_id: Uuid, p: &Provider, who: &ExternalUser) -> Result<()> {
        let user = self.core.user(user_id).await?;
        let notice = link_notice(&self.outbox, &user, &p.display_name())?;
        let identity = identity_of(user_id, &p.name, who, now(), 0);
        self.core
            .db(move |s| {
                s.write(|tx| {
                    tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    match tx.identity(&identity.provider, &identity.subject)? {
                        Some(existing) if existing.user_id == user_id => return Ok(()),
                        Some(_) => return Err(Error::Conflict("identity")),
                        None => {}
                    }
                    tx.put_identity(&identity)?;
                    tx.audit("user.identity_linked", Some(user_id), None, json!({"provider": identity.provider}))?;
                    if let Some(n) = &notice {
                        tx.emit(n)?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Trades the one-time code of a finished external login for tokens (or the second step).
    /// The code is spent first, so a code presented without the verifier of the application
    /// that started the login is refused and gone.
    pub async fn oauth_exchange(
        &self,
        code: &str,
        code_verifier: Option<&str>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let key = self.core.data_key.clone();
        let presented = Presented::Token(code.to_owned());
        let spent =
            self.core.db(move |s| s.write(|tx| spend_secret(tx, &key, Purpose::OAuthExchange, &presented))).await?;
        let secret = match spent {
            Spent::Expired(late) => {
                self.oauth_failure(late.target.as_deref().unwrap_or_default(), "code_expired", late.user_id);
                return Err(Error::CodeExpired);
            }
            other => other.into_result()?,
        };
        let finished: Finished = secret
            .sealed
            .as_deref()
            .and_then(|s| self.core.data_key.open(&secret.id, s).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::InvalidCode)?;
        let provider = secret.target.clone().unwrap_or_default();
        let bound = match (&finished.app_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) => Pkce::answers(challenge, verifier),
            (None, None) => self.core.cfg.oauth.app_pkce == AppPkce::Optional,
            _ => false,
        };
        if !bound {
            self.oauth_failure(&provider, "code_verifier_mismatch", None);
            return Err(Error::InvalidCode);
        }
        match finished.outcome {
            Outcome::SignIn => {}
            Outcome::LinkRequired => {
                self.oauth_failure(&provider, "account_exists_link_required", secret.user_id);
                return Err(Error::IdentityNotLinked);
            }
            Outcome::SignupDisabled => {
                self.oauth_failure(&provider, "signup_disabled", None);
                return Err(Error::IdentityNotLinked);
            }
        }
        let user_id = secret.user_id.ok_or(Error::InvalidCode)?;
        let user = self.core.user(user_id).await.map_err(|_| Error::InvalidCode)?;
        if !user.is_active() {
            return Err(Error::AccountDisabled);
        }
        let method = format!("oauth:{provider}");
        let how = Authn { amr: vec!["fed".into()], upstream_auth_time: Some(finished.upstream_auth_time) };
        self.sessions.second_factor_or_session(user, how, &method, None, None, client).await
    }

    /// Linked identities of a user, oldest first.
    pub async fn identities(&self, user: Uuid) -> Result<Vec<Identity>> {
        self.core.db(move |s| s.read(|tx| Ok(tx.identities_of(user)?))).await
    }

    /// A user's identities, for an admin (needs `users:read`).
    pub async fn admin_identities(&self, by: &Principal, user: Uuid) -> Result<Vec<Identity>> {
        self.core.authority(by, "users:read")?;
        self.core.user(user).await?;
        self.identities(user).await
    }

    /// Unlinks one of the caller's identities, after a recent sign-in
    /// (`security.step_up_window`); the last way to sign in stays.
    pub async fn unlink_identity(&self, ctx: &AuthContext, id: Uuid) -> Result<()> {
        self.core.require_recent_auth(ctx)?;
        self.unlink(None, ctx.user_id, id).await
    }

    /// The operator's or an admin's unlinking (needs `users:write`, and every permission the user has).
    pub async fn admin_unlink_identity(&self, by: &Principal, user: Uuid, id: Uuid) -> Result<()> {
        let authority = self.core.authority(by, "users:write")?;
        self.unlink(Some(authority), user, id).await
    }

    async fn unlink(&self, authority: Option<Authority>, user: Uuid, id: Uuid) -> Result<()> {
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let u = tx.user(user)?.ok_or(Error::NotFound("user"))?;
                    if let Some(a) = &authority {
                        a.may_change(&u.roles)?;
                    }
                    let identity =
                        tx.identity_by_id(id)?.filter(|i| i.user_id == user).ok_or(Error::NotFound("identity"))?;
                    if u.password_hash.is_none()
                        && tx.identities_of(user)?.len() <= 1
                        && tx.passkeys_of(user)?.is_empty()
                    {
                        return Err(Error::LastLoginMethod);
                    }
                    tx.delete_identity(id)?;
                    tx.audit("user.identity_unlinked", Some(user), None, json!({"provider": identity.provider}))?;
                    Ok(())
                })
            })
            .await
    }
}

/// What the provider sent back.
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub iss: Option<String>,
}
