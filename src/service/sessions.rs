//! Signing in and out: login, refresh rotation with reuse detection, logout, devices,
//! password change.

use std::net::IpAddr;

use serde_json::Value;

use uuid::Uuid;

use super::{AuthContext, AuthService, Tx, security_event};
use crate::{
    error::{Error, Result},
    model::{OutboxMessage, RefreshRecord, Session, User, now},
    security::{identifiers::Login, limits::RouteClass, random, throttle::Reservation, token::OpaqueToken},
};

/// Where a request came from, as recorded on the session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A solved challenge sent with a login or a password change.
#[derive(Debug, Clone)]
pub enum ChallengeSolution {
    /// A proof-of-work challenge from `POST /v1/auth/challenge` and its nonce.
    Pow { challenge: String, nonce: String },
    /// A CAPTCHA widget's response token.
    Captcha(String),
}

/// OAuth 2.0-shaped token response.
#[derive(Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub session_id: Uuid,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair").field("session_id", &self.session_id).finish_non_exhaustive()
    }
}

enum RefreshOutcome {
    Rotated(Box<User>, Session, Option<Vec<String>>),
    Reused(Uuid),
    Invalid,
}

fn clip(s: Option<String>, max: usize) -> Option<String> {
    s.map(|s| s.chars().take(max).collect())
}

impl AuthService {
    /// Same answer and similar time for an unknown account and a wrong password; a disabled
    /// account is only revealed to someone who knows its password. Repeated failures on a login
    /// name slow it down and then require a solved challenge, whether or not the account exists.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        device_name: Option<String>,
        client: ClientInfo,
        solution: Option<ChallengeSolution>,
    ) -> Result<TokenPair> {
        let result = self.password_login(login, password, device_name, client, solution).await;
        self.core.metrics.login(match &result {
            Ok(_) => "success",
            Err(e) => e.code(),
        });
        result
    }

    async fn password_login(
        &self,
        login: &str,
        password: &str,
        device_name: Option<String>,
        client: ClientInfo,
        solution: Option<ChallengeSolution>,
    ) -> Result<TokenPair> {
        let parsed = Login::parse(login).ok();
        let index_key = parsed.as_ref().map(|l| l.name().key());
        let user = match parsed {
            Some(l) => self.core.db(move |s| s.read(|tx| tx.user_by_login(l.name()).map_err(Error::from))).await?,
            None => None,
        };
        // Every spelling of an account shares one budget; a name without an account gets its
        // own, which behaves the same.
        let account = match (&user, index_key) {
            (Some(u), _) => account_key(u.id),
            (None, Some(key)) => format!("n:{key}"),
            (None, None) => format!("?:{}", login.trim().to_lowercase()),
        };
        self.check_account_limit(RouteClass::Login, &account, client.ip).await?;
        let attempt = self.pass_gate(&account, client.ip, solution).await?;
        if password.len() > self.core.policy.max_bytes() {
            self.record_failure(attempt, client.ip).await;
            return Err(Error::InvalidCredentials);
        }
        let user_id_of_failed = user.as_ref().map(|u| u.id);
        let (user, verified) = match user {
            Some(u) => match u.password_hash.as_deref() {
                Some(phc) => {
                    let v = self.core.hasher.verify(password, phc).await?;
                    (Some(u), v)
                }
                None => (None, self.core.hasher.verify_dummy(password).await?),
            },
            None => (None, self.core.hasher.verify_dummy(password).await?),
        };
        let Some(user) = user.filter(|_| verified.ok) else {
            self.record_failure(attempt, client.ip).await;
            self.core.audit_later(self.core.audit_event(
                "user.login_failed",
                false,
                user_id_of_failed,
                None,
                serde_json::json!({"reason": "invalid_credentials"}),
            ));
            return Err(Error::InvalidCredentials);
        };
        attempt.succeeded().await;
        if !user.is_active() {
            self.core.audit_later(self.core.audit_event(
                "user.login_failed",
                false,
                Some(user.id),
                None,
                serde_json::json!({"reason": "account_disabled"}),
            ));
            return Err(Error::AccountDisabled);
        }
        let rehash = if verified.needs_rehash { Some(self.core.hasher.hash(password).await?) } else { None };
        self.after_password(user, rehash, device_name, client).await
    }

    /// What follows a correct password: a confirmed contact when one is required, then the
    /// second factor when the account has one (or must enrol one), else a session.
    async fn after_password(
        &self,
        user: User,
        rehash: Option<String>,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        use crate::config::VerifyMode;
        let v = &self.core.cfg.verification;
        let refusal = if v.email == VerifyMode::Required && user.email.is_some() && !user.email_verified {
            Some(Error::EmailUnverified)
        } else if v.phone == VerifyMode::Required && user.phone.is_some() && !user.phone_verified {
            Some(Error::PhoneUnverified)
        } else {
            None
        };
        if let Some(e) = refusal {
            self.core.audit_later(self.core.audit_event(
                "user.login_failed",
                false,
                Some(user.id),
                None,
                serde_json::json!({"reason": e.code()}),
            ));
            return Err(e);
        }
        self.second_factor_or_session(user, vec!["pwd".into()], "password", rehash, device_name, client).await
    }

    /// After a first factor (`amr`): the second step when the account has a factor, or only
    /// enrolment when a role requires one it lacks; else a session.
    pub(super) async fn second_factor_or_session(
        &self,
        user: User,
        amr: Vec<String>,
        method: &str,
        rehash: Option<String>,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        if user.has_totp() {
            let token = self.mfa_step(&user, crate::model::Purpose::MfaLogin, device_name, &amr, method).await?;
            return Err(Error::MfaRequired(token));
        }
        if self.mfa_required_by_roles(&user) {
            let token = self.mfa_step(&user, crate::model::Purpose::MfaEnrol, device_name, &amr, method).await?;
            return Err(Error::MfaEnrolmentRequired(token));
        }
        self.start_session(user, amr, method, rehash, device_name, client).await
    }

    /// Opens a session for a user who has authenticated with `amr`.
    pub(super) async fn start_session(
        &self,
        user: User,
        amr: Vec<String>,
        method: &str,
        rehash: Option<String>,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let (opening, refresh) = self.opening(&user, amr, method, rehash, device_name, client)?;
        let session = opening.session.clone();
        let (user, permissions) = self.core.db(move |s| s.write(|tx| open_session(tx, opening))).await?;
        self.session_opened(&user, &session, refresh, permissions)
    }

    /// Everything a session's opening writes, made before its transaction (the notice is
    /// rendered from templates), and the refresh token only the client will see.
    pub(super) fn opening(
        &self,
        user: &User,
        amr: Vec<String>,
        method: &str,
        rehash: Option<String>,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<(Opening, String)> {
        let t = now();
        let refresh = random::new_token();
        let session = Session {
            id: Uuid::now_v7(),
            user_id: user.id,
            device_name: clip(device_name, 100),
            user_agent: clip(client.user_agent, 300),
            ip: client.ip.map(|ip| ip.to_string()),
            created_at: t,
            last_used_at: t,
            expires_at: t + self.core.cfg.tokens.refresh_ttl.as_secs(),
            absolute_expires_at: t + self.core.cfg.tokens.session_max.as_secs(),
            generation: 0,
            amr,
            auth_time: t,
        };
        let device = device_fingerprint(session.user_agent.as_deref());
        let notice = self.new_device_notice(user, &session, &device)?;
        let opening = Opening {
            refresh_hash: random::token_hash(&refresh),
            session,
            method: method.to_owned(),
            rehash,
            device,
            notice,
            include_permissions: self.core.cfg.tokens.include_permissions,
        };
        Ok((opening, refresh))
    }

    /// The tokens of a session just opened.
    pub(super) fn session_opened(
        &self,
        user: &User,
        session: &Session,
        refresh: String,
        permissions: Option<Vec<String>>,
    ) -> Result<TokenPair> {
        tracing::info!(user_id = %user.id, session_id = %session.id, ip = session.ip.as_deref().unwrap_or("-"), "login ok");
        self.token_pair(user, session, refresh, permissions)
    }

    /// The notice a login from a device not seen before sends, unless the user opted out or
    /// this is the account's first device.
    fn new_device_notice(&self, user: &User, session: &Session, device: &[u8]) -> Result<Option<OutboxMessage>> {
        let wanted = !user.new_device_notices_off
            && !user.known_devices.is_empty()
            && !user.known_devices.iter().any(|d| d == device);
        let Some(email) = user.email.as_ref().filter(|_| wanted) else { return Ok(None) };
        let locale = self.locale_of(Some(user), None);
        let vars = std::collections::BTreeMap::from([
            ("device", session.user_agent.clone().unwrap_or_else(|| "?".into())),
            ("ip", session.ip.clone().unwrap_or_else(|| "?".into())),
            ("time", crate::model::rfc3339(session.created_at)),
        ]);
        let to = super::messages::Recipient { address: email.clone(), locale };
        Ok(Some(self.message(crate::messages::MessageKind::NewDevice, &to, vars)?))
    }

    /// The per-account rate limit of a route class.
    async fn check_account_limit(&self, class: RouteClass, account: &str, ip: Option<IpAddr>) -> Result<()> {
        let rl = &self.core.cfg.rate_limit;
        if !rl.enabled {
            return Ok(());
        }
        let limit = rl.route(class).per_account;
        match self.core.limiter.check_account(class, account, &limit).await {
            Some(d) if !d.allowed => {
                self.core
                    .metrics
                    .rate_limited
                    .get_or_create(&crate::metrics::RouteLabels { route: class.as_str().into() })
                    .inc();
                security_event("rate_limited", ip);
                self.core.audit_throttle(class.as_str(), ip, "rate_limited");
                Err(Error::RateLimited(d.retry_after_secs))
            }
            _ => Ok(()),
        }
    }

    /// Brute-force gate: reserves the attempt before any password is hashed, refuses while the
    /// account is slowed down, and demands a solved challenge past the threshold.
    async fn pass_gate(
        &self,
        account: &str,
        ip: Option<IpAddr>,
        solution: Option<ChallengeSolution>,
    ) -> Result<Reservation> {
        let attempt = self.core.throttle.reserve(account, ip.map(|ip| self.core.ip_key(ip))).await.map_err(|wait| {
            security_event("login_throttled", ip);
            self.core.audit_throttle("login", ip, "too_many_attempts");
            Error::TooManyAttempts(wait.as_secs().saturating_add(1))
        })?;
        if !attempt.challenge_required() {
            return Ok(attempt);
        }
        let checked = match (solution, &self.core.captcha) {
            (Some(ChallengeSolution::Pow { challenge, nonce }), None) => {
                self.redeem_challenge(&challenge, &nonce).await
            }
            (Some(ChallengeSolution::Captcha(response)), Some(captcha)) => captcha.verify(&response, ip).await,
            _ => {
                security_event("challenge_required", ip);
                return Err(Error::ChallengeRequired);
            }
        };
        checked.map_err(|e| {
            security_event("challenge_failed", ip);
            Error::ChallengeFailed(e)
        })?;
        Ok(attempt)
    }

    /// A solved proof of work, spent once across every node that shares a cache.
    async fn redeem_challenge(&self, challenge: &str, nonce: &str) -> Result<(), crate::error::ChallengeError> {
        let id = self.core.challenges.check(challenge, nonce)?;
        if let Some(replay) = &self.core.replay {
            match replay.claim(&format!("pow:{id}"), self.core.challenges.ttl()).await {
                Ok(true) => {}
                Ok(false) => return Err(crate::error::ChallengeError::Reused),
                Err(e) => tracing::warn!(error = %e, "challenge replay falls back to this node's memory"),
            }
        }
        self.core.challenges.spend(&id)
    }

    async fn record_failure(&self, attempt: Reservation, ip: Option<IpAddr>) {
        security_event("login_failed", ip);
        if let Some(delay) = attempt.failed().await {
            let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            tracing::info!(delay_ms = ms, "account slowed down after repeated failures");
        }
    }

    fn token_pair(
        &self,
        user: &User,
        session: &Session,
        refresh_token: String,
        permissions: Option<Vec<String>>,
    ) -> Result<TokenPair> {
        let (access_token, expires_in) = self.issue_access_token(user, session, permissions)?;
        Ok(TokenPair {
            access_token,
            expires_in,
            refresh_token,
            refresh_expires_in: session.expires_at.min(session.absolute_expires_at).saturating_sub(now()),
            session_id: session.id,
        })
    }

    /// Rotates a refresh token. A token presented a second time means it leaked: the whole
    /// session ends (RFC 9700 §4.14.2).
    pub async fn refresh(&self, refresh_token: &str, client: ClientInfo) -> Result<TokenPair> {
        let old_hash = OpaqueToken::parse(refresh_token).ok_or(Error::InvalidRefreshToken)?.hash();
        let client_ip = client.ip;
        let new_token = random::new_token();
        let new_hash = random::token_hash(&new_token);
        let refresh_ttl = self.core.cfg.tokens.refresh_ttl.as_secs();
        let include_permissions = self.core.cfg.tokens.include_permissions;
        let outcome = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let t = tx.now();
                    let Some(mut rec) = tx.refresh(&old_hash)? else {
                        return Ok(RefreshOutcome::Invalid);
                    };
                    let Some(mut session) = tx.session(rec.session_id)? else {
                        return Ok(RefreshOutcome::Invalid);
                    };
                    if rec.used {
                        tx.revoke_session(session.id)?;
                        tx.audit_failure(
                            "refresh.reuse_detected",
                            Some(session.user_id),
                            Some(session.id),
                            Value::Null,
                        )?;
                        return Ok(RefreshOutcome::Reused(session.id));
                    }
                    if rec.expires_at <= t || session.absolute_expires_at <= t {
                        return Ok(RefreshOutcome::Invalid);
                    }
                    let user = match tx.user(session.user_id)? {
                        Some(u) if u.is_active() => u,
                        _ => return Ok(RefreshOutcome::Invalid),
                    };
                    rec.used = true;
                    tx.put_refresh(&old_hash, &rec)?;
                    session.generation += 1;
                    session.last_used_at = t;
                    session.expires_at = (t + refresh_ttl).min(session.absolute_expires_at);
                    if let Some(ip) = client.ip {
                        session.ip = Some(ip.to_string());
                    }
                    tx.audit("token.refreshed", Some(user.id), Some(session.id), Value::Null)?;
                    tx.put_session(&session)?;
                    tx.put_refresh(
                        &new_hash,
                        &RefreshRecord { session_id: session.id, used: false, expires_at: session.expires_at },
                    )?;
                    let permissions = permissions_in(tx, include_permissions, &user.roles)?;
                    Ok(RefreshOutcome::Rotated(Box::new(user), session, permissions))
                })
            })
            .await?;
        match outcome {
            RefreshOutcome::Rotated(user, session, permissions) => {
                self.token_pair(&user, &session, new_token, permissions)
            }
            RefreshOutcome::Reused(session_id) => {
                security_event("refresh_token_reused", client_ip);
                tracing::warn!(session_id = %session_id, "refresh token reused; session revoked");
                Err(Error::RefreshTokenReused)
            }
            RefreshOutcome::Invalid => Err(Error::InvalidRefreshToken),
        }
    }

    /// Ends the caller's session, and the session of `refresh_token` if it is the caller's too.
    pub async fn logout(&self, ctx: &AuthContext, refresh_token: Option<&str>) -> Result<()> {
        let (user_id, session_id) = (ctx.user_id, ctx.session_id);
        let hash = refresh_token.and_then(OpaqueToken::parse).map(OpaqueToken::hash);
        self.core
            .db(move |s| {
                s.write(|tx| {
                    tx.audit("user.logged_out", Some(user_id), Some(session_id), Value::Null)?;
                    let mut sids = vec![session_id];
                    if let Some(rec) = hash.map(|h| tx.refresh(&h)).transpose()?.flatten()
                        && rec.session_id != session_id
                        && tx.session(rec.session_id)?.is_some_and(|s| s.user_id == user_id)
                    {
                        sids.push(rec.session_id);
                    }
                    Ok(tx.revoke_sessions(&sids)?)
                })
            })
            .await?;
        tracing::info!(event = "logout", user_id = %user_id, session_id = %session_id, "logout");
        Ok(())
    }

    /// Ends every session of the user and refuses every access token issued so far.
    pub async fn logout_all(&self, user_id: Uuid) -> Result<()> {
        let ended = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    tx.audit("user.logged_out_everywhere", Some(user_id), None, Value::Null)?;
                    end_sessions(tx, user_id, None, true)
                })
            })
            .await?;
        tracing::info!(event = "logout_all", user_id = %user_id, sessions = ended, "logout everywhere");
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn list_sessions(&self, user_id: Uuid) -> Result<Vec<Session>> {
        let t = now();
        let mut sessions = self.core.db(move |s| s.read(|tx| tx.sessions_of(user_id).map_err(Error::from))).await?;
        sessions.retain(|s| s.expires_at.min(s.absolute_expires_at) > t);
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(sessions)
    }

    /// Logs one device out. Another user's session is reported as not found.
    pub async fn revoke_session(&self, user_id: Uuid, session_id: Uuid) -> Result<()> {
        self.core
            .db(move |s| {
                s.write(|tx| match tx.session(session_id)? {
                    Some(s) if s.user_id == user_id => {
                        tx.audit("session.revoked", Some(user_id), Some(session_id), Value::Null)?;
                        Ok(tx.revoke_session(session_id)?)
                    }
                    _ => Err(Error::NotFound("session")),
                })
            })
            .await?;
        tracing::info!(event = "session_revoked", user_id = %user_id, session_id = %session_id, "session revoked");
        Ok(())
    }

    /// Changes the caller's password after checking the current one; every other session ends.
    /// Throttled like login, on the same account budget, and answering a challenge the same way.
    pub async fn change_password(
        &self,
        ctx: &AuthContext,
        current: &str,
        new: &str,
        ip: Option<IpAddr>,
        solution: Option<ChallengeSolution>,
    ) -> Result<()> {
        let user_id = ctx.user_id;
        let account = account_key(user_id);
        self.check_account_limit(RouteClass::Password, &account, ip).await?;
        let attempt = self.pass_gate(&account, ip, solution).await?;
        let user = self
            .core
            .db(move |s| s.read(|tx| tx.user(user_id).map_err(Error::from)))
            .await?
            .ok_or(Error::NotFound("user"))?;
        let ok = match user.password_hash.as_deref() {
            Some(phc) if current.len() <= self.core.policy.max_bytes() => {
                self.core.hasher.verify(current, phc).await?.ok
            }
            _ => false,
        };
        if !ok {
            self.record_failure(attempt, ip).await;
            return Err(Error::WrongCurrentPassword);
        }
        attempt.succeeded().await;
        self.core.policy.check("new_password", new, &user_context(&user))?;
        let phc = self.core.hasher.hash(new).await?;
        let keep = ctx.session_id;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let mut u = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    u.password_hash = Some(phc);
                    u.password_reset_required = false;
                    u.updated_at = tx.now();
                    tx.update_user(&u)?;
                    tx.audit("user.password_changed", Some(user_id), Some(keep), Value::Null)?;
                    end_sessions(tx, user_id, Some(keep), false)
                })
            })
            .await?;
        tracing::info!(event = "password_changed", user_id = %user_id, "password changed");
        Ok(())
    }
}

/// A session about to open (see [`AuthService::opening`]).
pub(super) struct Opening {
    pub session: Session,
    refresh_hash: [u8; 32],
    method: String,
    /// A new hash of the password just checked, when its parameters are out of date.
    rehash: Option<String>,
    device: Vec<u8>,
    notice: Option<OutboxMessage>,
    include_permissions: bool,
}

/// Opens a session inside `tx`, with the user as the transaction reads it: a concurrent
/// disable or delete wins. Returns that user and the permissions its token carries.
pub(super) fn open_session(tx: &mut Tx<'_>, o: Opening) -> Result<(User, Option<Vec<String>>)> {
    let mut current = tx.user(o.session.user_id)?.ok_or(Error::InvalidCredentials)?;
    if !current.is_active() {
        return Err(Error::AccountDisabled);
    }
    let mut changed = false;
    if let Some(phc) = o.rehash {
        current.password_hash = Some(phc);
        changed = true;
    }
    if !current.known_devices.contains(&o.device) {
        if current.known_devices.len() >= KNOWN_DEVICES {
            current.known_devices.remove(0);
        }
        current.known_devices.push(o.device);
        changed = true;
        if let Some(n) = &o.notice {
            tx.emit(n)?;
        }
    }
    if changed {
        current.updated_at = tx.now();
        tx.update_user(&current)?;
    }
    let s = &o.session;
    tx.put_session(s)?;
    tx.put_refresh(&o.refresh_hash, &RefreshRecord { session_id: s.id, used: false, expires_at: s.expires_at })?;
    let details = serde_json::json!({"device_name": s.device_name, "amr": s.amr, "method": o.method});
    tx.audit("user.logged_in", Some(current.id), Some(s.id), details)?;
    let permissions = permissions_in(tx, o.include_permissions, &current.roles)?;
    Ok((current, permissions))
}

/// Ends the user's sessions (all, or all but `keep`), with a cut-off of every access token
/// issued so far when `cutoff`; returns how many sessions ended.
pub(super) fn end_sessions(tx: &mut Tx<'_>, user_id: Uuid, keep: Option<Uuid>, cutoff: bool) -> Result<usize> {
    let sids: Vec<Uuid> = tx.session_ids_of(user_id)?.into_iter().filter(|id| Some(*id) != keep).collect();
    let ended = tx.revoke_sessions(&sids)?;
    if cutoff {
        tx.cut_off_user(user_id)?;
    }
    Ok(ended)
}

/// Devices remembered per user for new-device notices.
const KNOWN_DEVICES: usize = 20;

/// What tells devices apart: a hash of the user agent (never stored in clear on the user).
fn device_fingerprint(user_agent: Option<&str>) -> Vec<u8> {
    random::token_hash(user_agent.unwrap_or("")).to_vec()
}

/// The throttling and rate-limit key of an existing account, whichever name it was reached by.
pub(super) fn account_key(id: Uuid) -> String {
    format!("u:{id}")
}

/// The permissions a token gets, read in the same transaction as the user it is minted for, so
/// that they match its authorization generation.
fn permissions_in(
    tx: &Tx<'_>,
    include: bool,
    roles: &[String],
) -> Result<Option<Vec<String>>, crate::store::StoreError> {
    Ok(if include { Some(super::roles::granted_permissions(&tx.roles()?, roles)) } else { None })
}

/// Words a password must not contain: the account's own names.
pub(super) fn user_context(u: &User) -> Vec<&str> {
    let mut words = Vec::new();
    if let Some(e) = &u.email {
        words.push(e.split('@').next().unwrap_or(e));
    }
    if let Some(n) = &u.username {
        words.push(n.as_str());
    }
    words
}
