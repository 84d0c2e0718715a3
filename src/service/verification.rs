//! Confirming email addresses and phone numbers: on registration and on a change of address,
//! by a mailed link or code, or an SMS code.

use std::sync::Arc;

use std::collections::BTreeMap;

use super::{
    core::Core,
    db::Tx,
    one_time::{Presented, Shape, spend_secret},
    outbox::{Outbox, Recipient},
    tokens::AuthContext,
};
use crate::{
    config::VerifyMode,
    error::{Error, Result},
    messages::MessageKind,
    model::{OneTimeSecret, OutboxMessage, Purpose, User},
    security::identifiers::{Email, Phone},
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
        let id = OneTimeSecret::id_for(purpose, address);
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
    /// old one only now.
    pub async fn verify_contact(&self, proof: VerifyProof) -> Result<Confirmed> {
        let (purpose, presented) = match proof {
            VerifyProof::Token(t) => (Purpose::VerifyEmail, Presented::Token(t)),
            VerifyProof::EmailCode { email, code } => {
                let Ok(email) = Email::parse(&email) else { return Err(Error::InvalidCode) };
                let id = OneTimeSecret::id_for(Purpose::VerifyEmail, email.as_str());
                (Purpose::VerifyEmail, Presented::Code { id, code })
            }
            VerifyProof::PhoneCode { phone, code } => {
                let Ok(phone) = Phone::parse(&phone) else { return Err(Error::InvalidCode) };
                let id = OneTimeSecret::id_for(Purpose::VerifyPhone, phone.as_str());
                (Purpose::VerifyPhone, Presented::Code { id, code })
            }
        };
        let key = self.core.data_key.clone();
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let secret = match spend_secret(tx, &key, purpose, &presented)?.into_result() {
                        Ok(s) => s,
                        Err(e) => return Ok(Err(e)),
                    };
                    let found = match secret.user_id {
                        Some(id) => tx.user(id)?,
                        None => None,
                    };
                    let Some(mut u) = found else { return Ok(Err(Error::InvalidCode)) };
                    let target = secret.target.clone().unwrap_or_default();
                    let (kind, event) = if purpose == Purpose::VerifyEmail {
                        let changed = u.email.as_deref() != Some(target.as_str());
                        u.email = Some(target);
                        u.email_verified = true;
                        (Confirmed::Email, if changed { "user.email_changed" } else { "user.email_verified" })
                    } else {
                        let changed = u.phone.as_deref() != Some(target.as_str());
                        u.phone = Some(target);
                        u.phone_verified = true;
                        (Confirmed::Phone, if changed { "user.phone_changed" } else { "user.phone_verified" })
                    };
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
        let owner = self
            .core
            .db(move |s| {
                s.read(|tx| {
                    let name = if is_email { LoginName::Email(&addr) } else { LoginName::Phone(&addr) };
                    if let Some(u) = tx.user_by_login(name)? {
                        let verified = if is_email { u.email_verified } else { u.phone_verified };
                        return Ok(if verified { None } else { Some(u) });
                    }
                    // An address waiting to replace a user's current one.
                    match tx.one_time(&OneTimeSecret::id_for(purpose, &addr))? {
                        Some(OneTimeSecret { user_id: Some(id), .. }) => Ok(tx.user(id)?),
                        _ => Ok(None),
                    }
                })
            })
            .await?;
        let Some(user) = owner.filter(User::is_active) else { return Ok(()) };
        let locale = self.outbox.locale_of(Some(&user), accept_language.as_deref());
        let out = self.confirmation(&user, &address, is_email, &locale)?;
        self.core.db(move |s| s.write(|tx| write_outgoing(tx, &[out]))).await
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
    pub email: Option<String>,
    pub phone: Option<String>,
    pub locale: Option<String>,
    pub new_device_notices: Option<bool>,
}

/// Writes secrets and their messages in the caller's transaction.
pub(super) fn write_outgoing(tx: &mut Tx<'_>, out: &[Outgoing]) -> Result<()> {
    for o in out {
        if let Some(s) = &o.secret {
            tx.put_one_time(s)?;
        }
        tx.emit(&o.message)?;
    }
    Ok(())
}
