//! Login with external providers (authorization code with PKCE, state bound to the browser,
//! nonce; RFC 9700), and the identities it links to accounts.

use std::sync::Arc;

use uuid::Uuid;

use serde_json::json;

use super::{
    authority::{Authority, Principal},
    core::Core,
    issuing::{ClientInfo, TokenPair},
    one_time::{Presented, Shape, Spent, spend_secret},
    sessions::Sessions,
};
use crate::{
    error::{Error, Result},
    model::{Identity, LoginName, OneTimeSecret, Purpose, User, now},
    security::random,
    upstream::{ExternalUser, Pkce, ProviderError},
};

/// How long a started login may take at the provider.
const STATE_TTL: u64 = 600;
/// How long the application has to exchange the code it was sent back with.
const EXCHANGE_TTL: u64 = 60;

/// What `state` carries from start to callback, sealed.
#[derive(serde::Serialize, serde::Deserialize)]
struct Started {
    redirect_uri: String,
    nonce: String,
    verifier: String,
    /// Linking to this signed-in user rather than signing in.
    link_to: Option<Uuid>,
}

/// What the exchange code stands for.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    SignIn,
    /// An account has the email, unverified or linking by email is off.
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

fn binding_hash(binding: &str) -> Vec<u8> {
    random::token_hash(binding).to_vec()
}

/// Login with external providers, and the identities it links.
pub struct Upstream {
    core: Arc<Core>,
    providers: Arc<crate::upstream::Providers>,
    sessions: Sessions,
}

impl Upstream {
    pub(super) fn new(core: Arc<Core>, providers: Arc<crate::upstream::Providers>, sessions: Sessions) -> Self {
        Self { core, providers, sessions }
    }

    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.providers.all().map(|p| ProviderInfo { name: p.name.clone(), display_name: p.display_name() }).collect()
    }

    /// Where a provider sends the browser back.
    pub fn oauth_callback_url(&self, provider: &str) -> String {
        format!("{}/v1/auth/oauth/{provider}/callback", self.core.public_url())
    }

    /// Starts a login (or, with `link_to`, a linking) at `provider`: the provider's authorize
    /// URL, and the value of the cookie that binds the flow to this browser. `redirect_uri` must
    /// be one of `oauth.allowed_redirects`, exactly.
    pub async fn oauth_start(
        &self,
        provider: &str,
        redirect_uri: &str,
        link_to: Option<Uuid>,
    ) -> Result<(Redirect, String)> {
        let p = self.providers.get(provider).ok_or(Error::NotFound("provider"))?;
        if !self.core.cfg.oauth.allowed_redirects.iter().any(|r| r == redirect_uri) {
            return Err(Error::InvalidRedirectUri);
        }
        let (state, binding, nonce, pkce) =
            (random::new_token(), random::new_token(), random::new_token(), Pkce::new());
        let location = p
            .authorize_url(&self.oauth_callback_url(provider), &state, &nonce, &pkce)
            .await
            .map_err(|e| Error::ProviderUnavailable(e.to_string()))?;
        let started = Started { redirect_uri: redirect_uri.to_owned(), nonce, verifier: pkce.verifier, link_to };
        let id = OneTimeSecret::id_for(Purpose::OAuthState, Uuid::now_v7());
        let mut secret = self
            .core
            .issue_secret(id, Purpose::OAuthState, link_to, Some(provider.to_owned()), STATE_TTL, Shape::CodeOnly)
            .secret;
        secret.token_hash = Some(random::token_hash(&state).to_vec());
        secret.code_hash = Some(binding_hash(&binding));
        let body = serde_json::to_vec(&started).map_err(|e| Error::Internal(e.to_string()))?;
        secret.sealed = Some(self.core.data_key.seal(&secret.id, &body));
        self.core.db(move |s| s.write(|tx| Ok(tx.put_one_time(&secret)?))).await?;
        Ok((Redirect { location }, binding))
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

    /// The provider's redirect back. Problems with `state` (unknown, spent, expired, not this
    /// browser's) answer an error here, since there is no trusted place to send the browser;
    /// everything later goes back to the application as `error=…`, or with a one-time `code`.
    pub async fn oauth_callback(
        &self,
        provider: &str,
        params: CallbackParams,
        binding: Option<String>,
    ) -> Result<Redirect> {
        // Single use, whatever happens next: found and burned in one step.
        let key = self.core.data_key.clone();
        let presented = Presented::Token(params.state.unwrap_or_default());
        let spent =
            self.core.db(move |s| s.write(|tx| spend_secret(tx, &key, Purpose::OAuthState, &presented))).await?;
        let (secret, live) = match spent {
            Spent::Live(s) => (s, true),
            Spent::Expired(s) => (s, false),
            Spent::Wrong | Spent::Missing => {
                self.oauth_failure(provider, "unknown_state", None);
                return Err(Error::InvalidState);
            }
        };
        let bound = binding.as_deref().is_some_and(|b| {
            secret
                .code_hash
                .as_deref()
                .is_some_and(|h| bool::from(subtle::ConstantTimeEq::ct_eq(h, binding_hash(b).as_slice())))
        });
        if !live || secret.target.as_deref() != Some(provider) || !bound {
            self.oauth_failure(provider, if bound { "expired_state" } else { "state_not_bound_to_browser" }, None);
            return Err(Error::InvalidState);
        }
        let started: Started = secret
            .sealed
            .as_deref()
            .and_then(|s| self.core.data_key.open(&secret.id, s).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::InvalidState)?;
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
        if let Some(user) = started.link_to {
            return match self.link_identity(user, provider, &who).await {
                Ok(()) => Ok(Redirect { location: with_params(&started.redirect_uri, &[("linked", provider)]) }),
                Err(Error::Conflict(_)) => {
                    self.oauth_failure(provider, "identity_linked_elsewhere", Some(user));
                    Ok(back("identity_in_use"))
                }
                Err(e) => Err(e),
            };
        }
        let (user_id, outcome) = self.account_for(provider, &who).await?;
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
        let body = serde_json::to_vec(&outcome).map_err(|e| Error::Internal(e.to_string()))?;
        secret.sealed = Some(self.core.data_key.seal(&secret.id, &body));
        self.core.db(move |s| s.write(|tx| Ok(tx.put_one_time(&secret)?))).await?;
        let code = issued.token.unwrap_or_default();
        Ok(Redirect { location: with_params(&started.redirect_uri, &[("code", code.as_str())]) })
    }

    /// The account an external login leads to, created or linked as configured.
    async fn account_for(&self, provider: &str, who: &ExternalUser) -> Result<(Option<Uuid>, Outcome)> {
        let (provider_name, who) = (provider.to_owned(), who.clone());
        let signup = self.core.cfg.oauth.signup;
        let by_email = self.core.cfg.oauth.link_by_verified_email;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let t = tx.now();
                    if let Some(mut known) = tx.identity(&provider_name, &who.subject)? {
                        known.last_login_at = t;
                        known.email = who.email.clone();
                        known.email_verified = who.email_verified;
                        tx.put_identity(&known)?;
                        return Ok((Some(known.user_id), Outcome::SignIn));
                    }
                    let holder = match &who.email {
                        Some(e) => tx.user_by_login(LoginName::Email(e))?,
                        None => None,
                    };
                    let user = match holder {
                        // Only an email the provider vouches for may join an existing account.
                        Some(u) if who.email_verified && by_email => u,
                        Some(u) => return Ok((Some(u.id), Outcome::LinkRequired)),
                        None if !signup => return Ok((None, Outcome::SignupDisabled)),
                        None => {
                            let email =
                                who.email.as_deref().and_then(|e| crate::security::identifiers::Email::parse(e).ok());
                            let u = User {
                                email_verified: email.is_some() && who.email_verified,
                                email: email.map(crate::security::identifiers::Email::into_string),
                                ..User::new(vec!["user".into()], t)
                            };
                            tx.insert_user(&u)?;
                            let method = format!("oauth:{provider_name}");
                            tx.audit(
                                "user.registered",
                                Some(u.id),
                                None,
                                json!({"roles": ["user"], "method": method}),
                            )?;
                            u
                        }
                    };
                    let identity = Identity {
                        id: Uuid::now_v7(),
                        user_id: user.id,
                        provider: provider_name.clone(),
                        subject: who.subject.clone(),
                        email: who.email.clone(),
                        email_verified: who.email_verified,
                        name: who.name.clone(),
                        created_at: t,
                        last_login_at: t,
                    };
                    tx.put_identity(&identity)?;
                    tx.audit("user.identity_linked", Some(user.id), None, json!({"provider": provider_name}))?;
                    Ok((Some(user.id), Outcome::SignIn))
                })
            })
            .await
    }

    async fn link_identity(&self, user_id: Uuid, provider: &str, who: &ExternalUser) -> Result<()> {
        let identity = Identity {
            id: Uuid::now_v7(),
            user_id,
            provider: provider.to_owned(),
            subject: who.subject.clone(),
            email: who.email.clone(),
            email_verified: who.email_verified,
            name: who.name.clone(),
            created_at: now(),
            last_login_at: 0,
        };
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
                    Ok(())
                })
            })
            .await
    }

    /// Trades the one-time code of a finished external login for tokens (or the second step).
    pub async fn oauth_exchange(&self, code: &str, client: ClientInfo) -> Result<TokenPair> {
        let key = self.core.data_key.clone();
        let presented = Presented::Token(code.to_owned());
        let secret = self
            .core
            .db(move |s| s.write(|tx| spend_secret(tx, &key, Purpose::OAuthExchange, &presented)))
            .await?
            .into_result()?;
        let outcome: Outcome = secret
            .sealed
            .as_deref()
            .and_then(|s| self.core.data_key.open(&secret.id, s).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::InvalidCode)?;
        let provider = secret.target.clone().unwrap_or_default();
        match outcome {
            Outcome::SignIn => {}
            Outcome::LinkRequired => {
                self.oauth_failure(&provider, "account_exists_link_required", secret.user_id);
                return Err(Error::AccountExistsLinkRequired);
            }
            Outcome::SignupDisabled => {
                self.oauth_failure(&provider, "signup_disabled", None);
                return Err(Error::SignupDisabled);
            }
        }
        let user_id = secret.user_id.ok_or(Error::InvalidCode)?;
        let user = self.core.user(user_id).await.map_err(|_| Error::InvalidCode)?;
        if !user.is_active() {
            return Err(Error::AccountDisabled);
        }
        let method = format!("oauth:{provider}");
        self.sessions.second_factor_or_session(user, vec!["fed".into()], &method, None, None, client).await
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

    /// Unlinks one of the caller's identities; the last way to sign in stays.
    pub async fn unlink_identity(&self, user: Uuid, id: Uuid) -> Result<()> {
        self.unlink(None, user, id).await
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
                    if u.password_hash.is_none() && tx.identities_of(user)?.len() <= 1 {
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
