//! Signing in and out: login, refresh rotation with reuse detection, logout, devices,
//! password change.

use std::sync::Arc;

use std::net::IpAddr;

use serde_json::Value;

use uuid::Uuid;

use super::{
    core::{Core, security_event, user_context},
    issuing::{Authn, ClientInfo, Opener, TokenPair, account_key, end_sessions, permissions_in},
    mfa::SecondFactors,
    tokens::AuthContext,
};
use crate::{
    error::{Error, Result},
    model::{RefreshRecord, Session, User, now},
    security::{identifiers::Login, limits::RouteClass, random, throttle::Reservation, token::OpaqueToken},
};

/// A solved challenge sent with a login or a password change.
#[derive(Debug, Clone)]
pub enum ChallengeSolution {
    /// A proof-of-work challenge from `POST /v1/auth/challenge` and its nonce.
    Pow { challenge: String, nonce: String },
    /// A CAPTCHA widget's response token.
    Captcha(String),
}

enum RefreshOutcome {
    Rotated(Box<User>, Box<Session>, Option<Vec<String>>),
    Reused(Uuid),
    /// A role of the user now requires a second factor the session was opened without.
    NeedsSecondFactor(Uuid),
    Invalid,
}

/// Signing in and out, and the sessions that result.
#[derive(Clone)]
pub struct Sessions {
    core: Arc<Core>,
    opener: Opener,
    factors: SecondFactors,
}

impl Sessions {
    pub(super) fn new(core: Arc<Core>, opener: Opener, factors: SecondFactors) -> Self {
        Self { core, opener, factors }
    }

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
        // Registering a taken address creates nothing, so a newcomer's password there must meet
        // what it meets on a new account still waiting for a required confirmation: both answer
        // and count as a wrong password (the mailed link is the way in).
        let unconfirmed = user.as_ref().and_then(|u| self.required_confirmation_missing(u));
        let Some(user) = user.filter(|_| verified.ok && unconfirmed.is_none()) else {
            self.record_failure(attempt, client.ip).await;
            let reason = match unconfirmed {
                Some(e) if verified.ok => e.code(),
                _ => "invalid_credentials",
            };
            self.core.audit_later(self.core.audit_event(
                "user.login_failed",
                false,
                user_id_of_failed,
                None,
                serde_json::json!({"reason": reason}),
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
        self.second_factor_or_session(user, Authn::now(vec!["pwd".into()]), "password", rehash, device_name, client)
            .await
    }

    /// The refusal due while a contact that must be confirmed (`verification.email` / `.phone` =
    /// `required`) is not.
    pub(super) fn required_confirmation_missing(&self, user: &User) -> Option<Error> {
        use crate::config::VerifyMode;
        let v = &self.core.cfg.verification;
        if v.email == VerifyMode::Required && user.email.is_some() && !user.email_verified {
            Some(Error::EmailUnverified)
        } else if v.phone == VerifyMode::Required && user.phone.is_some() && !user.phone_verified {
            Some(Error::PhoneUnverified)
        } else {
            None
        }
    }

    /// After a first factor (`amr`: a password, an upstream login): nothing while a contact that
    /// must be confirmed is not (`verification.email` / `.phone` = `required`), whichever way in;
    /// then the second step when the account has a factor, or only enrolment when a role
    /// requires one it lacks; else a session.
    pub(super) async fn second_factor_or_session(
        &self,
        user: User,
        how: Authn,
        method: &str,
        rehash: Option<String>,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        if let Some(e) = self.required_confirmation_missing(&user) {
            self.core.audit_later(self.core.audit_event(
                "user.login_failed",
                false,
                Some(user.id),
                None,
                serde_json::json!({"reason": e.code(), "method": method}),
            ));
            return Err(e);
        }
        if user.has_totp() {
            let token =
                self.factors.mfa_step(&user, crate::model::Purpose::MfaLogin, device_name, &how.amr, method).await?;
            return Err(Error::MfaRequired(token));
        }
        if self.factors.mfa_required_by_roles(&user) {
            // With a passkey there is a second factor already: the password alone enrols no
            // other.
            let uid = user.id;
            if !self.core.db(move |s| s.read(|tx| Ok(tx.passkeys_of(uid)?))).await?.is_empty() {
                self.core.audit_later(self.core.audit_event(
                    "user.login_failed",
                    false,
                    Some(user.id),
                    None,
                    serde_json::json!({"reason": "passkey_required", "method": method}),
                ));
                return Err(Error::PasskeyRequired);
            }
            let token =
                self.factors.mfa_step(&user, crate::model::Purpose::MfaEnrol, device_name, &how.amr, method).await?;
            return Err(Error::MfaEnrolmentRequired(token));
        }
        self.opener.start(user, how, method, rehash, device_name, client).await
    }

    /// The per-account rate limit of a route class.
    async fn check_account_limit(&self, class: RouteClass, account: &str, ip: Option<IpAddr>) -> Result<()> {
        self.core.check_account_limit(class, account, ip).await
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

    /// Rotates a refresh token. A token presented a second time means it leaked: the whole
    /// session ends (RFC 9700 §4.14.2). So does a session opened without a second factor once a
    /// role of its user requires one.
    pub async fn refresh(&self, refresh_token: &str, client: ClientInfo) -> Result<TokenPair> {
        self.rotate(refresh_token, client, None).await.map(|(pair, _, _)| pair)
    }

    /// Rotates a refresh token of the sessions of `relying_party` (`None`: authd's own); a
    /// token of any other is refused as unknown, and changes nothing.
    pub(super) async fn rotate(
        &self,
        refresh_token: &str,
        client: ClientInfo,
        relying_party: Option<Uuid>,
    ) -> Result<(TokenPair, Session, User)> {
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
                    if session.client_id != relying_party {
                        return Ok(RefreshOutcome::Invalid);
                    }
                    // A relying party's session lives no longer than the browser session it
                    // was opened under.
                    if let Some(parent) = session.parent
                        && tx.session(parent)?.is_none()
                    {
                        return Ok(RefreshOutcome::Invalid);
                    }
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
                    // Read here, not from this node's copy, so that a rule just set on another
                    // node holds too.
                    if !crate::model::multi_factor(&session.amr)
                        && tx.roles()?.iter().any(|r| r.require_mfa && user.roles.contains(&r.name))
                    {
                        tx.revoke_session(session.id)?;
                        tx.audit_failure(
                            "refresh.second_factor_required",
                            Some(user.id),
                            Some(session.id),
                            Value::Null,
                        )?;
                        return Ok(RefreshOutcome::NeedsSecondFactor(session.id));
                    }
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
                    Ok(RefreshOutcome::Rotated(Box::new(user), Box::new(session), permissions))
                })
            })
            .await?;
        match outcome {
            RefreshOutcome::Rotated(user, session, permissions) => {
                let pair = self.opener.token_pair(&user, &session, new_token, permissions)?;
                Ok((pair, *session, *user))
            }
            RefreshOutcome::Reused(session_id) => {
                security_event("refresh_token_reused", client_ip);
                tracing::warn!(session_id = %session_id, "refresh token reused; session revoked");
                Err(Error::RefreshTokenReused)
            }
            RefreshOutcome::NeedsSecondFactor(session_id) => {
                tracing::info!(session_id = %session_id, "session ended: a role now requires a second factor");
                Err(Error::SecondFactorRequired)
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

    /// Ends every session of the user and refuses every access token issued so far; changes
    /// awaiting confirmation and logins under way (`mfa_token`s, unexchanged codes) go too.
    pub async fn logout_all(&self, user_id: Uuid) -> Result<()> {
        let ended = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    tx.audit("user.logged_out_everywhere", Some(user_id), None, Value::Null)?;
                    tx.delete_one_time_of(user_id, super::verification::PENDING_PURPOSES)?;
                    end_sessions(tx, user_id, None, true)
                })
            })
            .await?;
        tracing::info!(event = "logout_all", user_id = %user_id, sessions = ended, "logout everywhere");
        Ok(())
    }

    /// Ends every session of the user but `keep` (the one asking); returns how many ended.
    pub async fn end_other_sessions(&self, user_id: Uuid, keep: Uuid) -> Result<usize> {
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let ended = end_sessions(tx, user_id, Some(keep), false)?;
                    tx.audit(
                        "user.other_sessions_ended",
                        Some(user_id),
                        Some(keep),
                        serde_json::json!({"count": ended}),
                    )?;
                    Ok(ended)
                })
            })
            .await
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
                        // A browser session takes the applications' sessions opened under it.
                        super::issuing::end_with_children(tx, user_id, session_id)?;
                        Ok(())
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
