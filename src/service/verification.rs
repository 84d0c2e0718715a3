//! Confirming email addresses and phone numbers: on registration and on a change of address,
//! by a mailed link or code, or an SMS code.

use std::sync::Arc;

use std::collections::BTreeMap;

use super::{
    core::Core,
    db::Tx,
    issuing::account_key,
    one_time::{Presented, Shape, Spent, charge_attempt, put_issued, spend_secret},
    outbox::{Outbox, Recipient},
    tokens::AuthContext,
};
use crate::{
    config::VerifyMode,
    error::{Error, Result},
    messages::MessageKind,
    model::{NameChannel, OneTimeSecret, OutboxMessage, Purpose, User},
    security::{
        identifiers::{Email, Phone},
        sealed::DataKey,
    },
};

/// What `POST /v1/auth/verify` was given.
#[derive(Debug, Clone)]
pub enum VerifyProof {
    /// The token from a mailed link.
    Token(String),
    EmailCode {
        email: String,
        code: String,
    },
    PhoneCode {
        phone: String,
        code: String,
    },
}

/// Which contact a proof confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    Email,
    Phone,
}

/// A secret and the message that carries it, to be written together.
pub(super) struct Outgoing {
    pub secret: Option<OneTimeSecret>,
    pub message: OutboxMessage,
}

/// Confirming email addresses and phone numbers.
#[derive(Clone)]
pub struct Verification {
    core: Arc<Core>,
    outbox: Outbox,
}

impl Verification {
    pub(super) fn new(core: Arc<Core>, outbox: Outbox) -> Self {
        Self { core, outbox }
    }

    /// A confirmation of `address` (an email, or a phone number) for `user`.
    pub(super) fn confirmation(&self, user: &User, address: &str, email: bool, locale: &str) -> Result<Outgoing> {
        let v = &self.core.cfg.verification;
        let (purpose, ttl) =
            if email { (Purpose::VerifyEmail, v.email_ttl) } else { (Purpose::VerifyPhone, v.sms_ttl) };
        // Per account and address: one account's pending change never replaces another's.
        let id = OneTimeSecret::id_for(purpose, format_args!("{}:{address}", user.id));
        let shape = if email { Shape::TokenAndCode } else { Shape::CodeOnly };
        let issued = self.core.issue_secret(id, purpose, Some(user.id), Some(address.to_owned()), ttl.as_secs(), shape);
        let mut vars = BTreeMap::from([
            ("code", issued.code.clone().unwrap_or_default()),
            ("valid_for", self.outbox.valid_for(locale, ttl.as_secs())),
        ]);
        if let Some(token) = &issued.token {
            vars.insert("link", self.outbox.link("verify", token));
        }
        let kind = if email { MessageKind::VerifyEmail } else { MessageKind::VerifyPhone };
        let to = Recipient { address: address.to_owned(), locale: locale.to_owned() };
        Ok(Outgoing { secret: Some(issued.secret), message: self.outbox.message(kind, &to, vars)? })
    }

    /// Confirmations a new account gets, as configured.
    pub(super) fn confirmations_for_new(&self, user: &User, locale: &str) -> Result<Vec<Outgoing>> {
        let v = &self.core.cfg.verification;
        let mut out = Vec::new();
        if let Some(e) = user.email.as_ref().filter(|_| v.email != VerifyMode::Off) {
            out.push(self.confirmation(user, e, true, locale)?);
        }
        if let Some(p) = user.phone.as_ref().filter(|_| v.phone != VerifyMode::Off) {
            out.push(self.confirmation(user, p, false, locale)?);
        }
        Ok(out)
    }

    /// Whether registering a taken address must answer like a new account (it would otherwise
    /// tell who has one).
    pub(super) fn hides_duplicate(&self, field: &str) -> bool {
        match field {
            "email" => self.core.cfg.verification.email != VerifyMode::Off,
            "phone" => self.core.cfg.verification.phone != VerifyMode::Off,
            _ => false,
        }
    }

    /// Confirms an email or phone by a link token or a code. A confirmed new email replaces the
    /// old one only now; a first proof makes that channel the owner's (see [`record_proof`]).
    pub async fn verify_contact(&self, proof: VerifyProof) -> Result<Confirmed> {
        // A code names its address; confirmations are per account and address, so every
        // account waiting to confirm that address is a candidate.
        let (purpose, presented, target) = match proof {
            VerifyProof::Token(t) => (Purpose::VerifyEmail, Presented::Token(t), None),
            VerifyProof::EmailCode { email, code } => {
                let Ok(email) = Email::parse(&email) else { return Err(Error::InvalidCode) };
                (Purpose::VerifyEmail, Presented::Code { id: String::new(), code }, Some(email.into_string()))
            }
            VerifyProof::PhoneCode { phone, code } => {
                let Ok(phone) = Phone::parse(&phone) else { return Err(Error::InvalidCode) };
                (Purpose::VerifyPhone, Presented::Code { id: String::new(), code }, Some(phone.into_string()))
            }
        };
        let key = self.core.data_key.clone();
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let spent = match (&presented, target) {
                        (Presented::Code { code, .. }, Some(target)) => {
                            spend_code_for_target(tx, &key, purpose, &target, code)?
                        }
                        _ => spend_secret(tx, &key, purpose, &presented)?,
                    };
                    let secret = match spent.into_result() {
                        Ok(s) => s,
                        Err(e) => return Ok(Err(e)),
                    };
                    let found = match secret.user_id {
                        Some(id) => tx.user(id)?,
                        None => None,
                    };
                    let Some(mut u) = found else { return Ok(Err(Error::InvalidCode)) };
                    let target = secret.target.clone().unwrap_or_default();
                    let (channel, kind) = if purpose == Purpose::VerifyEmail {
                        (NameChannel::Email, Confirmed::Email)
                    } else {
                        (NameChannel::Phone, Confirmed::Phone)
                    };
                    let changed = u.channel_of(&target) != Some(channel);
                    let event = match (kind, changed) {
                        (Confirmed::Email, true) => "user.email_changed",
                        (Confirmed::Email, false) => "user.email_verified",
                        (Confirmed::Phone, true) => "user.phone_changed",
                        (Confirmed::Phone, false) => "user.phone_verified",
                    };
                    record_proof(tx, &mut u, channel, target, None)?;
                    u.updated_at = tx.now();
                    tx.update_user(&u)?;
                    tx.audit(event, Some(u.id), None, serde_json::Value::Null)?;
                    Ok(Ok(kind))
                })
            })
            .await?
    }

    /// Sends a new confirmation to an address that awaits one. Answers alike whether or not it
    /// does (the work happens after the answer), and refuses a repeat within
    /// `verification.resend_interval` for any address.
    pub async fn resend_confirmation(
        &self,
        email: Option<String>,
        phone: Option<String>,
        accept_language: Option<String>,
    ) -> Result<()> {
        let (address, is_email) = match (email, phone) {
            (Some(e), _) => match Email::parse(&e) {
                Ok(e) => (e.into_string(), true),
                Err(f) => return Err(Error::Invalid(vec![f])),
            },
            (None, Some(p)) => match Phone::parse(&p) {
                Ok(p) => (p.into_string(), false),
                Err(f) => return Err(Error::Invalid(vec![f])),
            },
            (None, None) => return Err(Error::invalid("email", "required", "give an email or a phone number")),
        };
        self.outbox.once_per_interval(&format!("resend:{address}")).await?;
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.resend_now(address, is_email, accept_language).await {
                tracing::warn!(error = %e, "resending a confirmation failed");
            }
        });
        Ok(())
    }

    async fn resend_now(&self, address: String, is_email: bool, accept_language: Option<String>) -> Result<()> {
        use crate::model::LoginName;
        let mode = if is_email { self.core.cfg.verification.email } else { self.core.cfg.verification.phone };
        if mode == VerifyMode::Off {
            return Ok(());
        }
        let purpose = if is_email { Purpose::VerifyEmail } else { Purpose::VerifyPhone };
        let addr = address.clone();
        let owners = self
            .core
            .db(move |s| {
                s.read(|tx| {
                    let name = if is_email { LoginName::Email(&addr) } else { LoginName::Phone(&addr) };
                    if let Some(u) = tx.user_by_login(name)? {
                        let verified = if is_email { u.email_verified } else { u.phone_verified };
                        return Ok(if verified { Vec::new() } else { vec![u] });
                    }
                    // An address waiting to replace a user's current one (for each such user).
                    let mut users = Vec::new();
                    for secret in tx.one_time_for_target(purpose, &addr)? {
                        if let Some(u) = secret.user_id.map(|id| tx.user(id)).transpose()?.flatten() {
                            users.push(u);
                        }
                    }
                    Ok(users)
                })
            })
            .await?;
        let mut out = Vec::new();
        for user in owners.iter().filter(|u| u.is_active()) {
            let locale = self.outbox.locale_of(Some(user), accept_language.as_deref());
            out.push(self.confirmation(user, &address, is_email, &locale)?);
        }
        self.core.db(move |s| s.write(|tx| write_outgoing(tx, &out))).await
    }

    /// Changes the caller's own contacts and preferences. A new email or phone takes effect
    /// once confirmed when verification is on (the old address is told); at once otherwise.
    pub async fn update_me(&self, ctx: &AuthContext, change: MeChange) -> Result<User> {
        let user_id = ctx.user_id;
        let user = self.core.user(user_id).await?;
        let mut errors = Vec::new();
        let email = change.email.as_deref().map(Email::parse).transpose().unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let phone = change.phone.as_deref().map(Phone::parse).transpose().unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let name = change.name.as_deref().map(str::trim).map(str::to_owned);
        if name.as_ref().is_some_and(|n| n.chars().count() > 100 || n.chars().any(char::is_control)) {
            errors.push(crate::error::FieldError::new(
                "name",
                "invalid_name",
                "a name is at most 100 characters, none a control character",
            ));
        }
        if let Some(l) = change.locale.as_deref().filter(|l| !crate::messages::LOCALES.contains(l)) {
            errors.push(crate::error::FieldError::new(
                "locale",
                "unsupported_locale",
                format!("`{l}` is not one of {:?}", crate::messages::LOCALES),
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let email = email.map(Email::into_string).filter(|e| user.email.as_ref() != Some(e));
        let phone = phone.map(Phone::into_string).filter(|p| user.phone.as_ref() != Some(p));
        if email.is_some() || phone.is_some() {
            self.core.require_recent_auth(ctx)?;
        }
        let locale = change.locale.clone().unwrap_or_else(|| self.outbox.locale_of(Some(&user), None));
        let v = &self.core.cfg.verification;
        // What sends is limited per account and per destination, as a resend is.
        let sends_to: Vec<&String> = [(&email, v.email), (&phone, v.phone)]
            .into_iter()
            .filter_map(|(a, mode)| a.as_ref().filter(|_| mode != VerifyMode::Off))
            .collect();
        if !sends_to.is_empty() {
            self.outbox.once_per_interval(&format!("send:{}", account_key(user_id))).await?;
            for a in sends_to {
                self.outbox.once_per_interval(&format!("resend:{a}")).await?;
            }
        }
        let mut outgoing = Vec::new();
        let mut immediate_email = None;
        let mut immediate_phone = None;
        if let Some(e) = email {
            if v.email == VerifyMode::Off {
                immediate_email = Some(e);
            } else {
                outgoing.push(self.confirmation(&user, &e, true, &locale)?);
                if let Some(old) = &user.email {
                    let to = Recipient { address: old.clone(), locale: locale.clone() };
                    let notice = self.outbox.message(
                        MessageKind::EmailChangeNotice,
                        &to,
                        BTreeMap::from([("new_address", e)]),
                    )?;
                    outgoing.push(Outgoing { secret: None, message: notice });
                }
            }
        }
        if let Some(p) = phone {
            if v.phone == VerifyMode::Off {
                immediate_phone = Some(p);
            } else {
                outgoing.push(self.confirmation(&user, &p, false, &locale)?);
            }
        }
        let session = ctx.session_id;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let mut u = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    if let Some(n) = name {
                        u.display_name = Some(n).filter(|n| !n.is_empty());
                    }
                    if let Some(l) = change.locale {
                        u.locale = Some(l);
                    }
                    if let Some(on) = change.new_device_notices {
                        u.new_device_notices_off = !on;
                    }
                    if let Some(e) = immediate_email {
                        u.email = Some(e);
                        u.email_verified = false;
                    }
                    if let Some(p) = immediate_phone {
                        u.phone = Some(p);
                        u.phone_verified = false;
                    }
                    u.updated_at = tx.now();
                    tx.update_user(&u)?;
                    write_outgoing(tx, &outgoing)?;
                    tx.audit("user.profile_updated", Some(user_id), Some(session), serde_json::Value::Null)?;
                    Ok(u)
                })
            })
            .await
    }
}

/// The caller's change to their own account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MeChange {
    /// The display name; an empty one clears it.
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub locale: Option<String>,
    pub new_device_notices: Option<bool>,
}

/// Writes secrets and their messages in the caller's transaction.
pub(super) fn write_outgoing(tx: &mut Tx<'_>, out: &[Outgoing]) -> Result<()> {
    for o in out {
        if let Some(s) = &o.secret {
            put_issued(tx, s)?;
        }
        tx.emit(&o.message)?;
    }
    Ok(())
}

/// Spends the confirmation of `target` whose code is `code`, among every account's. A code that
/// matches none costs each of them an attempt.
fn spend_code_for_target(tx: &mut Tx<'_>, key: &DataKey, purpose: Purpose, target: &str, code: &str) -> Result<Spent> {
    let candidates = tx.one_time_for_target(purpose, target)?;
    if candidates.is_empty() {
        return Ok(Spent::Missing);
    }
    let t = crate::model::now();
    let mut matched = None;
    for (i, c) in candidates.iter().enumerate() {
        let ok = c.attempts_left > 0
            && c.expires_at > t
            && c.code_hash.as_deref().is_some_and(|h| key.code_matches(&c.id, code, h));
        if ok && matched.is_none() {
            matched = Some(i);
        }
    }
    if let Some(i) = matched {
        let id = candidates[i].id.clone();
        return spend_secret(tx, key, purpose, &Presented::Code { id, code: code.to_owned() });
    }
    let mut expired = None;
    for c in candidates {
        if c.expires_at <= t {
            tx.delete_one_time(&c.id)?;
            expired = Some(c);
        } else {
            charge_attempt(tx, c)?;
        }
    }
    Ok(match expired {
        Some(c) => Spent::Expired(c),
        None => Spent::Wrong,
    })
}

/// Pending secrets a reset or a logout-all drops: changes awaiting confirmation, second steps of
/// logins under way, and codes from external logins not yet exchanged.
pub(super) const PENDING_PURPOSES: &[Purpose] =
    &[Purpose::VerifyEmail, Purpose::VerifyPhone, Purpose::MfaLogin, Purpose::MfaEnrol, Purpose::OAuthExchange];

/// Records a round trip through `channel` to `address` on `u` (the caller writes `u`). The first
/// proof makes that channel the owner's: the other, pending name goes (in [`User::prove`]), and
/// so do pending confirmations and identities linked before it, except the identity the proof
/// came `through` (a provider vouching for the address).
pub(super) fn record_proof(
    tx: &mut Tx<'_>,
    u: &mut User,
    channel: NameChannel,
    address: String,
    through: Option<uuid::Uuid>,
) -> Result<bool> {
    let first = u.prove(channel, address, tx.now());
    if first {
        tx.delete_one_time_of(u.id, &[Purpose::VerifyEmail, Purpose::VerifyPhone])?;
        drop_identities(tx, u.id, None, through)?;
    }
    Ok(first)
}

/// Unlinks the user's identities linked at or after `since` (all of them for `None`), but `keep`.
pub(super) fn drop_identities(
    tx: &mut Tx<'_>,
    user_id: uuid::Uuid,
    since: Option<crate::model::UnixTime>,
    keep: Option<uuid::Uuid>,
) -> Result<usize> {
    let mut dropped = 0;
    for i in tx.identities_of(user_id)? {
        if since.is_none_or(|t| i.created_at >= t) && Some(i.id) != keep {
            tx.delete_identity(i.id)?;
            dropped += 1;
        }
    }
    if dropped > 0 {
        tx.audit("user.identities_unlinked", Some(user_id), None, serde_json::json!({"count": dropped}))?;
    }
    Ok(dropped)
}
