//! Getting back in after forgetting a password: a mailed link and code (or an SMS code), then a
//! new password that ends every session.

use std::sync::Arc;

use std::collections::BTreeMap;

use super::{
    core::{Core, user_context},
    issuing::{account_key, end_sessions},
    one_time::{Presented, Shape, spend_secret},
    outbox::{Outbox, Recipient},
    verification::{Outgoing, PENDING_PURPOSES, drop_identities, record_proof, write_outgoing},
};
use crate::{
    error::{Error, Result},
    messages::MessageKind,
    model::{LoginName, NameChannel, OneTimeSecret, Purpose, UnixTime, User},
    security::identifiers::Login,
};

/// What `POST /v1/auth/password/reset` was given.
#[derive(Debug, Clone)]
pub enum ResetProof {
    Token(String),
    Code { login: String, code: String },
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
}
