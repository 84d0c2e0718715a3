//! Getting back in: after forgetting a password, a mailed link and code (or an SMS code), then
//! a new password that ends every session; after losing a passkey, the rungs of the recovery
//! ladder that need no administrator (a recovery code, a mailed link and code) and the last one
//! that does (an operator's link), each ending in a token that enrols a new passkey.

use std::sync::Arc;

use std::collections::BTreeMap;

use super::{
    authority::Principal,
    core::{Core, find_account, security_event, user_context},
    db::Tx,
    issuing::{account_key, end_sessions},
    mfa::{SecondFactor, check_factor, spend_recovery_code},
    one_time::{Presented, Shape, spend_secret, spend_secret_with},
    outbox::{Outbox, Recipient},
    passkeys::{EnrolVia, enrolment_secret},
    verification::{Outgoing, PENDING_PURPOSES, drop_identities, record_proof, write_outgoing},
};
use crate::{
    error::{Error, Result},
    messages::MessageKind,
    model::{LoginName, NameChannel, OneTimeSecret, Purpose, UnixTime, User},
    security::{identifiers::Login, token::OpaqueToken},
};
use uuid::Uuid;

/// What `POST /v1/auth/password/reset` was given.
#[derive(Debug, Clone)]
pub enum ResetProof {
    Token(String),
    Code { login: String, code: String },
}

/// What `POST /v1/auth/recover/finish` was given.
#[derive(Debug, Clone)]
pub enum RecoverProof {
    /// The mailed link's token, or an operator's link; with the authenticator app's code (or a
    /// recovery code) when the account has one.
    Token { token: String, factor: Option<String> },
    /// The mailed code, likewise.
    Code { login: String, code: String, factor: Option<String> },
    /// One of the account's recovery codes.
    RecoveryCode { login: String, code: String },
}

/// An enrolment token, and how long it works.
#[derive(Debug, Clone)]
pub struct EnrolmentToken {
    pub token: String,
    pub expires_in: u64,
}

/// Password reset by a mailed link or code.
#[derive(Clone)]
pub struct Recovery {
    core: Arc<Core>,
    outbox: Outbox,
}

impl Recovery {
    pub(super) fn new(core: Arc<Core>, outbox: Outbox) -> Self {
        Self { core, outbox }
    }

    /// Where a user who forgot their password starts.
    pub(super) fn link_to_forgot(&self) -> String {
        match &self.core.cfg.links.base_url {
            Some(b) => format!("{}/forgot", b.trim_end_matches('/')),
            None => format!("{}/ui/forgot", self.core.public_url()),
        }
    }

    /// Sends a reset link and code to the account `login` names, if there is one. Answers the
    /// same either way, at once: the lookup and the sending happen after the answer. A repeat
    /// for the same login within `verification.resend_interval` is refused, whoever asks.
    pub async fn forgot_password(&self, login: &str, accept_language: Option<String>) -> Result<()> {
        let key = Login::parse(login).map(|l| l.name().key()).unwrap_or_else(|_| login.trim().to_lowercase());
        self.outbox.once_per_interval(&format!("forgot:{key}")).await?;
        let login = login.to_owned();
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.send_reset(login, accept_language).await {
                tracing::warn!(error = %e, "sending a password reset failed");
            }
        });
        Ok(())
    }

    async fn send_reset(&self, login: String, accept_language: Option<String>) -> Result<()> {
        let Ok(parsed) = Login::parse(&login) else { return Ok(()) };
        let prefer = if matches!(parsed.name(), LoginName::Phone(_)) { NameChannel::Phone } else { NameChannel::Email };
        let user = self.core.db(move |s| s.read(|tx| tx.user_by_login(parsed.name()).map_err(Error::from))).await?;
        let Some(user) = user.filter(User::is_active) else { return Ok(()) };
        // One reset per account per interval, whichever of its names asked (after the answer,
        // so a refusal here tells nobody anything).
        if self.outbox.once_per_interval(&format!("forgot:{}", account_key(user.id))).await.is_err() {
            return Ok(());
        }
        let Some((channel, address)) = user.recovery_address(prefer) else { return Ok(()) };
        let address = address.to_owned();
        let locale = self.outbox.locale_of(Some(&user), accept_language.as_deref());
        let ttl = self.core.cfg.recovery.reset_ttl.as_secs();
        let id = OneTimeSecret::id_for(Purpose::PasswordReset, user.id);
        let (kind, shape) = match channel {
            NameChannel::Email => (MessageKind::PasswordReset, Shape::TokenAndCode),
            NameChannel::Phone => (MessageKind::PasswordResetSms, Shape::CodeOnly),
        };
        let issued =
            self.core.issue_secret(id, Purpose::PasswordReset, Some(user.id), Some(address.clone()), ttl, shape);
        let mut vars = BTreeMap::from([
            ("code", issued.code.unwrap_or_default()),
            ("valid_for", self.outbox.valid_for(&locale, ttl)),
        ]);
        if let Some(token) = &issued.token {
            vars.insert("link", self.outbox.link("reset", token));
        }
        let message = self.outbox.message(kind, &Recipient { address, locale }, vars)?;
        let out = Outgoing { secret: Some(issued.secret), message };
        self.core
            .db(move |s| {
                s.write(|tx| {
                    write_outgoing(tx, &[out])?;
                    tx.audit("user.password_reset_requested", Some(user.id), None, serde_json::Value::Null)?;
                    Ok(())
                })
            })
            .await
    }

    /// Sets a new password with a reset link or code. Every session ends, every token issued
    /// before is refused, and pending secrets of the account (changes awaiting confirmation,
    /// logins under way) go. The round trip proves the name it went to; identities linked
    /// since the last proof are unlinked (all of them unless `keep_identities`). A bad proof
    /// changes nothing but the code's attempt budget, and says nothing about the account.
    pub async fn reset_password(&self, proof: ResetProof, new_password: &str, keep_identities: bool) -> Result<()> {
        let presented = match proof {
            ResetProof::Token(t) => Presented::Token(t),
            ResetProof::Code { login, code } => {
                let user = match Login::parse(&login) {
                    Ok(l) => {
                        self.core.db(move |s| s.read(|tx| tx.user_by_login(l.name()).map_err(Error::from))).await?
                    }
                    Err(_) => None,
                };
                let id = match user {
                    Some(u) => OneTimeSecret::id_for(Purpose::PasswordReset, u.id),
                    None => String::new(),
                };
                Presented::Code { id, code }
            }
        };
        // Only what needs no account here; the account's own words are checked once the proof
        // holds (a refusal then undoes the spending).
        self.core.policy.check("new_password", new_password, &[])?;
        let phc = self.core.hasher.hash(new_password).await?;
        let key = self.core.data_key.clone();
        let core = self.core.clone();
        let new_password = new_password.to_owned();
        let user_id = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let secret = match spend_secret(tx, &key, Purpose::PasswordReset, &presented)?.into_result() {
                        Ok(s) => s,
                        Err(e) => return Ok(Err(e)),
                    };
                    let found = match secret.user_id {
                        Some(id) => tx.user(id)?.filter(User::is_active),
                        None => None,
                    };
                    let Some(mut u) = found else { return Ok(Err(Error::InvalidCode)) };
                    // An error here aborts the transaction: the code stays unspent.
                    core.policy.check("new_password", &new_password, &user_context(&u))?;
                    let last_proof = u.has_proven_name().then_some(u.proven_at);
                    u.password_hash = Some(phc);
                    u.password_reset_required = false;
                    // The message reached its address: that proves that name, and only it.
                    if let Some(target) = secret.target.clone()
                        && let Some(channel) = u.channel_of(&target)
                    {
                        record_proof(tx, &mut u, channel, target, None)?;
                    }
                    // Identities linked since the last proof (all when there was none); a
                    // proof time unknown (0, from before it was kept) keeps them.
                    let since = match last_proof {
                        _ if !keep_identities => None,
                        None => None,
                        Some(0) => Some(UnixTime::MAX),
                        Some(t) => Some(t),
                    };
                    drop_identities(tx, u.id, since, None)?;
                    // Passkeys likewise; at a first proof also the authenticator app and the
                    // recovery codes.
                    let passkeys_since = match last_proof {
                        None => None,
                        Some(0) => Some(UnixTime::MAX),
                        Some(t) => Some(t),
                    };
                    drop_unproven(tx, &mut u, passkeys_since)?;
                    tx.delete_one_time_of(u.id, PENDING_PURPOSES)?;
                    u.updated_at = tx.now();
                    tx.bump_authz(u.id, &mut u.authz_gen)?;
                    tx.update_user(&u)?;
                    end_sessions(tx, u.id, None, false)?;
                    tx.audit("user.password_reset", Some(u.id), None, serde_json::Value::Null)?;
                    Ok(Ok(u.id))
                })
            })
            .await??;
        tracing::info!(event = "password_reset", user_id = %user_id, "password reset");
        Ok(())
    }

    /// Rung 4: sends a link and a code (one secret) to the proven email or phone of the account
    /// `login` names, or its pending name while none is proven. Answers the same either way, at
    /// once; the lookup and the sending happen after the answer.
    pub async fn recover_account(&self, login: &str, accept_language: Option<String>) -> Result<()> {
        let key = Login::parse(login).map(|l| l.name().key()).unwrap_or_else(|_| login.trim().to_lowercase());
        self.outbox.once_per_interval(&format!("recover:{key}")).await?;
        let login = login.to_owned();
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.send_recovery(login, accept_language).await {
                tracing::warn!(error = %e, "sending an account recovery failed");
            }
        });
        Ok(())
    }

    async fn send_recovery(&self, login: String, accept_language: Option<String>) -> Result<()> {
        let Ok(parsed) = Login::parse(&login) else { return Ok(()) };
        let prefer = if matches!(parsed.name(), LoginName::Phone(_)) { NameChannel::Phone } else { NameChannel::Email };
        let user = self.core.db(move |s| s.read(|tx| tx.user_by_login(parsed.name()).map_err(Error::from))).await?;
        let Some(user) = user.filter(User::is_active) else { return Ok(()) };
        if self.outbox.once_per_interval(&format!("recover:{}", account_key(user.id))).await.is_err() {
            return Ok(());
        }
        let Some((channel, address)) = user.recovery_address(prefer) else { return Ok(()) };
        let address = address.to_owned();
        let locale = self.outbox.locale_of(Some(&user), accept_language.as_deref());
        let ttl = self.core.cfg.recovery.reset_ttl.as_secs();
        let id = OneTimeSecret::id_for(Purpose::AccountRecovery, user.id);
        let kind = match channel {
            NameChannel::Email => MessageKind::AccountRecovery,
            NameChannel::Phone => MessageKind::AccountRecoverySms,
        };
        let mut issued = self.core.issue_secret(
            id,
            Purpose::AccountRecovery,
            Some(user.id),
            Some(address.clone()),
            ttl,
            Shape::TokenAndCode,
        );
        issued.secret.method = Some("recovery".into());
        let vars = BTreeMap::from([
            ("code", issued.code.unwrap_or_default()),
            ("valid_for", self.outbox.valid_for(&locale, ttl)),
            ("link", self.outbox.link("recover", issued.token.as_deref().unwrap_or_default())),
        ]);
        let message = self.outbox.message(kind, &Recipient { address, locale }, vars)?;
        let out = Outgoing { secret: Some(issued.secret), message };
        self.core
            .db(move |s| {
                s.write(|tx| {
                    write_outgoing(tx, &[out])?;
                    tx.audit("user.recovery_requested", Some(user.id), None, serde_json::Value::Null)?;
                    Ok(())
                })
            })
            .await
    }

    /// The account a recovery link is for, as its page names it before anything is spent;
    /// `None` for a link that is unknown, spent or expired.
    pub async fn link_account(&self, token: &str) -> Result<Option<String>> {
        let Some(hash) = OpaqueToken::parse(token).map(|t| t.hash()) else { return Ok(None) };
        let found = self.core.db(move |s| s.read(|tx| Ok(tx.one_time_by_token(&hash)?))).await?;
        let Some(uid) = found
            .filter(|s| s.purpose == Purpose::AccountRecovery && s.expires_at > crate::model::now())
            .and_then(|s| s.user_id)
        else {
            return Ok(None);
        };
        let user = self.core.db(move |s| s.read(|tx| Ok(tx.user(uid)?))).await?;
        Ok(user.filter(User::is_active).map(|u| u.email.or(u.phone).or(u.username).unwrap_or_else(|| u.id.to_string())))
    }

    /// Rung 5: a single-use link for the account `who` names, valid for
    /// `security.recovery_link_ttl` (needs `users:write`, and every permission the user has).
    pub async fn recovery_link(&self, by: &Principal, who: &str) -> Result<(User, String)> {
        let authority = self.core.authority(by, "users:write")?;
        let who = who.to_owned();
        let ttl = self.core.cfg.security.recovery_link_ttl.as_secs();
        let core = self.core.clone();
        let (user, token) = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let u = find_account(&**tx, &who)?;
                    authority.may_change(&u.roles)?;
                    // Apart from the mailed one: asking for a mail never cancels the operator's link.
                    let id = format!("{}:operator:{}", Purpose::AccountRecovery.as_str(), u.id);
                    let mut issued =
                        core.issue_secret(id, Purpose::AccountRecovery, Some(u.id), None, ttl, Shape::TokenOnly);
                    issued.secret.method = Some("recovery_link".into());
                    tx.put_one_time(&issued.secret)?;
                    tx.audit("user.recovery_link_issued", Some(u.id), None, serde_json::Value::Null)?;
                    Ok((u, issued.token.unwrap_or_default()))
                })
            })
            .await?;
        Ok((user, self.outbox.link("recover", &token)))
    }

    /// Finishes rung 3, 4 or 5: the proof is spent, and the answer is a token that enrols one
    /// passkey. A mailed proof proves the name it went to; if the account had no proven name
    /// yet, whatever was added to it before (password, identities, passkeys) goes, for its
    /// owner is only now known.
    pub async fn finish_recovery(&self, proof: RecoverProof, ip: Option<std::net::IpAddr>) -> Result<EnrolmentToken> {
        let expires_in = self.core.cfg.passkeys.enrolment_ttl.as_secs();
        let token = match proof {
            RecoverProof::RecoveryCode { login, code } => self.recover_with_code(&login, &code, ip).await?,
            RecoverProof::Token { token, factor } => {
                let hash = OpaqueToken::parse(&token).map(|t| t.hash());
                let found = match hash {
                    Some(h) => self.core.db(move |s| s.read(|tx| Ok(tx.one_time_by_token(&h)?))).await?,
                    None => None,
                };
                let user = found.filter(|s| s.purpose == Purpose::AccountRecovery).and_then(|s| s.user_id);
                self.recover_with_proof(Presented::Token(token), user, factor, ip).await?
            }
            RecoverProof::Code { login, code, factor } => {
                let user = self.user_by_login(&login).await?.map(|u| u.id);
                let id = user.map_or_else(String::new, |u| OneTimeSecret::id_for(Purpose::AccountRecovery, u));
                self.recover_with_proof(Presented::Code { id, code }, user, factor, ip).await?
            }
        };
        Ok(EnrolmentToken { token, expires_in })
    }

    async fn user_by_login(&self, login: &str) -> Result<Option<User>> {
        match Login::parse(login) {
            Ok(l) => self.core.db(move |s| s.read(|tx| tx.user_by_login(l.name()).map_err(Error::from))).await,
            Err(_) => Ok(None),
        }
    }

    /// Rungs 4 and 5. The mail proves the mailbox only: an account whose owner is known (a name
    /// proven) and that has an authenticator app needs its code too, checked on the budget of
    /// recoveries; a wrong one costs the link an attempt, a missing one costs nothing. The
    /// operator's link vouches by itself.
    async fn recover_with_proof(
        &self,
        presented: Presented,
        user: Option<Uuid>,
        factor: Option<String>,
        ip: Option<std::net::IpAddr>,
    ) -> Result<String> {
        let attempt = match &factor {
            Some(_) => {
                let budget = recovery_budget(user, "");
                Some(self.reserve_recovery(&budget, ip).await?)
            }
            None => None,
        };
        let key = self.core.data_key.clone();
        let core = self.core.clone();
        let issuer = self.core.cfg.messages.product_name.clone();
        let factor_failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failed = factor_failed.clone();
        let outcome = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let spent = spend_secret_with(tx, &key, Purpose::AccountRecovery, &presented, |tx, secret| {
                        let Some(mut u) = secret.user_id.map(|id| tx.user(id)).transpose()?.flatten() else {
                            return Ok(true);
                        };
                        let vouched = secret.method.as_deref() == Some("recovery_link");
                        if vouched || !u.has_totp() || !u.has_proven_name() {
                            return Ok(true);
                        }
                        // Aborts the transaction: nothing is spent.
                        let Some(f) = &factor else { return Err(Error::FactorRequired) };
                        let f = second_factor(f);
                        if check_factor(&key, &mut u, &f, &issuer)? {
                            tx.update_user(&u)?;
                            return Ok(true);
                        }
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        Ok(false)
                    })?;
                    let secret = match spent.into_result() {
                        Ok(s) => s,
                        Err(e) => return Ok(Err(e)),
                    };
                    let found = match secret.user_id {
                        Some(id) => tx.user(id)?.filter(User::is_active),
                        None => None,
                    };
                    let Some(mut u) = found else { return Ok(Err(Error::InvalidCode)) };
                    let via = if secret.method.as_deref() == Some("recovery_link") {
                        EnrolVia::RecoveryLink
                    } else {
                        EnrolVia::Recovery
                    };
                    if let Some(target) = secret.target.clone()
                        && let Some(channel) = u.channel_of(&target)
                        && record_proof(tx, &mut u, channel, target, None)?
                    {
                        // The first proof: the owner is known only now, and what anyone could
                        // have added before goes.
                        u.password_hash = None;
                        drop_unproven(tx, &mut u, None)?;
                        tx.bump_authz(u.id, &mut u.authz_gen)?;
                        end_sessions(tx, u.id, None, false)?;
                    }
                    u.updated_at = tx.now();
                    tx.update_user(&u)?;
                    let (enrol, token) = enrolment_secret(&core, u.id, via, None);
                    tx.put_one_time(&enrol)?;
                    tx.audit("user.recovery_proven", Some(u.id), None, serde_json::json!({"via": via.as_str()}))?;
                    Ok(Ok(token))
                })
            })
            .await?;
        if factor_failed.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(a) = attempt {
                let _ = a.failed().await;
            }
            security_event("recovery_failed", ip);
            return Err(Error::InvalidMfaCode);
        }
        if let (Ok(_), Some(a)) = (&outcome, attempt) {
            a.succeeded().await;
        }
        outcome
    }

    /// Reserves a try on a budget of recoveries, or refuses while failures slow it down.
    async fn reserve_recovery(
        &self,
        budget: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<crate::security::throttle::Reservation> {
        self.core.check_account_limit(crate::security::limits::RouteClass::Mfa, budget, ip).await?;
        self.core.throttle.reserve(budget, ip.map(|ip| self.core.ip_key(ip))).await.map_err(|wait| {
            security_event("recovery_throttled", ip);
            Error::TooManyAttempts(wait.as_secs().saturating_add(1))
        })
    }

    /// Rung 3: a recovery code, on a budget of recoveries apart from the login's second step
    /// (which anyone could otherwise slow down from here, without the password).
    async fn recover_with_code(&self, login: &str, code: &str, ip: Option<std::net::IpAddr>) -> Result<String> {
        let user = self.user_by_login(login).await?;
        let budget = recovery_budget(user.as_ref().map(|u| u.id), login);
        let attempt = self.reserve_recovery(&budget, ip).await?;
        let key = self.core.data_key.clone();
        let core = self.core.clone();
        let code = code.to_owned();
        let user_id = user.filter(User::is_active).map(|u| u.id);
        let outcome = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let Some(mut u) = user_id.and_then(|id| tx.user(id).transpose()).transpose()? else {
                        // The same write as for a known account, so that time tells nothing.
                        tx.audit_failure("user.recovery_failed", None, None, serde_json::Value::Null)?;
                        return Ok(None);
                    };
                    if !spend_recovery_code(&key, &mut u, &code) {
                        tx.audit_failure("user.recovery_failed", Some(u.id), None, serde_json::Value::Null)?;
                        return Ok(None);
                    }
                    u.updated_at = tx.now();
                    tx.update_user(&u)?;
                    let (enrol, token) = enrolment_secret(&core, u.id, EnrolVia::RecoveryCode, None);
                    tx.put_one_time(&enrol)?;
                    tx.audit("user.recovery_proven", Some(u.id), None, serde_json::json!({"via": "recovery_code"}))?;
                    Ok(Some(token))
                })
            })
            .await?;
        match outcome {
            Some(token) => {
                attempt.succeeded().await;
                Ok(token)
            }
            None => {
                security_event("recovery_failed", ip);
                let _ = attempt.failed().await;
                Err(Error::InvalidCode)
            }
        }
    }
}

/// The failure budget of recoveries of an account (or of a login without one).
fn recovery_budget(user: Option<Uuid>, login: &str) -> String {
    match user {
        Some(id) => format!("recover:{}", account_key(id)),
        None => format!("recover:n:{}", login.trim().to_lowercase()),
    }
}

/// A second factor as typed: six digits are a TOTP code, anything else a recovery code.
fn second_factor(typed: &str) -> SecondFactor {
    let typed = typed.trim();
    if typed.len() == 6 && typed.bytes().all(|b| b.is_ascii_digit()) {
        SecondFactor::Totp(typed.to_owned())
    } else {
        SecondFactor::Recovery(typed.to_owned())
    }
}

/// Drops what anyone could have added to an account before its owner proved a name (the caller
/// writes `u`): passkeys made at or after `since`, all of them for `None`; and with `None` also
/// the authenticator app, the recovery codes, and every token under way that enrols, signs in
/// halfway or recovers.
pub(super) fn drop_unproven(tx: &mut Tx<'_>, u: &mut User, since: Option<UnixTime>) -> Result<()> {
    let mut dropped = 0;
    for p in tx.passkeys_of(u.id)? {
        if since.is_none_or(|t| p.created_at >= t) {
            tx.delete_passkey(p.id)?;
            dropped += 1;
        }
    }
    if since.is_none() {
        u.totp = None;
        u.recovery_codes.clear();
        tx.delete_one_time_of(
            u.id,
            &[Purpose::PasskeyEnrol, Purpose::AccountRecovery, Purpose::MfaLogin, Purpose::MfaEnrol],
        )?;
    }
    if dropped > 0 {
        tx.audit("user.passkeys_dropped", Some(u.id), None, serde_json::json!({"count": dropped}))?;
    }
    Ok(())
}
