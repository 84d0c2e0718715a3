//! Single-use secrets: one mechanism for mailed links and codes, SMS codes and the MFA login
//! step. Stored hashed, with a purpose, an expiry and an attempt budget; burned on use.

use uuid::Uuid;

use super::{core::Core, db::Tx};
use crate::{
    error::{Error, Result},
    model::{OneTimeSecret, Purpose, now},
    security::{
        random::{self, random_bytes},
        sealed::DataKey,
        token::OpaqueToken,
    },
};

/// A freshly issued secret, with what only its recipient may see.
pub(super) struct Issued {
    pub secret: OneTimeSecret,
    pub token: Option<String>,
    pub code: Option<String>,
}

/// What a secret is made of: a long token for a link, a short code to type, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    TokenAndCode,
    CodeOnly,
    TokenOnly,
}

/// How to reach a secret: the long token from a link, or a code typed for the secret's id.
pub(super) enum Presented {
    Token(String),
    Code { id: String, code: String },
}

/// Six decimal digits, uniformly.
fn six_digits() -> String {
    loop {
        let n = u32::from_be_bytes(random_bytes::<4>());
        // Reject the top sliver so that every code is equally likely.
        if n < u32::MAX - (u32::MAX % 1_000_000) {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// What spending a presented secret came to. Every case but `Missing` has changed the store, so
/// the caller commits before it answers.
pub(super) enum Spent {
    /// It was live and the proof held: it is spent now.
    Live(OneTimeSecret),
    /// It had expired, and is gone now.
    Expired(OneTimeSecret),
    /// It was live but the proof was wrong: that cost an attempt, and the last attempt burns it.
    Wrong,
    /// Nothing by that name for that purpose.
    Missing,
}

impl Spent {
    /// The spent secret, or what a client is told.
    pub fn into_result(self) -> std::result::Result<OneTimeSecret, Error> {
        match self {
            Spent::Live(s) => Ok(s),
            Spent::Expired(_) => Err(Error::CodeExpired),
            Spent::Wrong | Spent::Missing => Err(Error::InvalidCode),
        }
    }
}

impl Core {
    /// A new secret for `purpose`, under `id` (replacing the secret there).
    pub(super) fn issue_secret(
        &self,
        id: String,
        purpose: Purpose,
        user: Option<Uuid>,
        target: Option<String>,
        ttl_secs: u64,
        shape: Shape,
    ) -> Issued {
        let with_token = shape != Shape::CodeOnly;
        let with_code = shape != Shape::TokenOnly;
        let token = with_token.then(random::new_token);
        let code = with_code.then(six_digits);
        let t = now();
        let secret = OneTimeSecret {
            token_hash: token.as_deref().map(|t| random::token_hash(t).to_vec()),
            code_hash: code.as_deref().map(|c| self.data_key.code_hash(&id, c)),
            id,
            purpose,
            user_id: user,
            target,
            amr: Vec::new(),
            method: None,
            created_at: t,
            expires_at: t + ttl_secs,
            attempts_left: self.cfg.verification.attempts,
            budget_until: t + ttl_secs,
            sealed: None,
            issued: None,
        };
        Issued { secret, token, code }
    }
}

/// Finds the secret `presented` names for `purpose` and spends it, in the caller's
/// transaction: the one way to spend a secret, so that reading and burning it is one step.
pub(super) fn spend_secret(tx: &mut Tx<'_>, key: &DataKey, purpose: Purpose, presented: &Presented) -> Result<Spent> {
    spend_secret_with(tx, key, purpose, presented, |_, _| Ok(true))
}

/// [`spend_secret`] for a secret that only opens a door: `proof` checks what was presented with
/// it (a second factor, say), in the same transaction, and a failed proof costs an attempt like
/// a wrong code.
pub(super) fn spend_secret_with(
    tx: &mut Tx<'_>,
    key: &DataKey,
    purpose: Purpose,
    presented: &Presented,
    proof: impl FnOnce(&mut Tx<'_>, &OneTimeSecret) -> Result<bool>,
) -> Result<Spent> {
    let found = match presented {
        Presented::Token(token) => match OpaqueToken::parse(token) {
            Some(token) => tx.one_time_by_token(&token.hash())?,
            None => None,
        },
        Presented::Code { id, .. } => tx.one_time(id)?,
    };
    let Some(secret) = found.filter(|s| s.purpose == purpose) else {
        return Ok(Spent::Missing);
    };
    if secret.expires_at <= now() {
        tx.delete_one_time(&secret.id)?;
        return Ok(Spent::Expired(secret));
    }
    let code_ok = match presented {
        Presented::Token(_) => secret.token_hash.is_some(),
        // A spent budget takes no more codes, even from a secret issued again since.
        Presented::Code { code, .. } => {
            let matches = secret.code_hash.as_deref().is_some_and(|h| key.code_matches(&secret.id, code, h));
            matches && secret.attempts_left > 0
        }
    };
    if code_ok && proof(tx, &secret)? {
        tx.delete_one_time(&secret.id)?;
        return Ok(Spent::Live(secret));
    }
    charge_attempt(tx, secret)?;
    Ok(Spent::Wrong)
}

/// A wrong guess at `secret`. The last attempt burns it, but a husk (no token, no code) stays
/// until its budget lapses, so that a re-issue does not bring a fresh budget.
pub(super) fn charge_attempt(tx: &mut Tx<'_>, mut secret: OneTimeSecret) -> Result<()> {
    secret.attempts_left = secret.attempts_left.saturating_sub(1);
    if secret.attempts_left == 0 {
        if secret.budget_until <= now() {
            tx.delete_one_time(&secret.id)?;
            return Ok(());
        }
        secret.token_hash = None;
        secret.code_hash = None;
        secret.expires_at = secret.budget_until;
    }
    tx.put_one_time(&secret)?;
    Ok(())
}

/// Stores a freshly issued secret. One issued again under a live id (a resend, a second
/// request) keeps what is left of the guess budget of the one it replaces.
pub(super) fn put_issued(tx: &mut Tx<'_>, secret: &OneTimeSecret) -> Result<()> {
    let mut secret = secret.clone();
    if let Some(old) = tx.one_time(&secret.id)?
        && old.purpose == secret.purpose
        && old.user_id == secret.user_id
        && old.budget_until > now()
    {
        secret.attempts_left = secret.attempts_left.min(old.attempts_left);
        secret.budget_until = old.budget_until;
    }
    tx.put_one_time(&secret)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let c = six_digits();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
