//! Single-use secrets: one mechanism for mailed links and codes, SMS codes and the MFA login
//! step. Stored hashed, with a purpose, an expiry and an attempt budget; burned on use.

use uuid::Uuid;

use super::{AuthService, Tx};
use crate::{
    error::{Error, Result},
    model::{OneTimeSecret, Purpose, now},
    security::{
        random::{self, random_bytes},
        sealed::DataKey,
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

/// What a presented secret resolves to, before it is spent.
enum Found {
    Live(OneTimeSecret),
    Expired(OneTimeSecret),
    WrongCode(OneTimeSecret),
    Missing,
}

impl AuthService {
    /// A new secret for `purpose`, under `id` (replacing the secret there).
    pub(super) fn issue_secret(
        &self,
        id: String,
        purpose: Purpose,
        user: Uuid,
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
            sealed: None,
        };
        Issued { secret, token, code }
    }
}

/// Finds the secret `presented` names for `purpose` and spends it, in the caller's
/// transaction. A wrong code costs an attempt (the last one burns the secret), and that is the
/// only change a failure makes: the outer `Ok` carries failures too, so that the caller commits
/// the spent attempt before answering with the inner error.
pub(super) fn spend_secret(
    tx: &mut Tx<'_>,
    key: &DataKey,
    purpose: Purpose,
    presented: &Presented,
) -> Result<std::result::Result<OneTimeSecret, Error>> {
    let found = match presented {
        Presented::Token(token) => {
            if token.is_empty() || token.len() > 512 {
                Found::Missing
            } else {
                match tx.one_time_by_token(&random::token_hash(token))? {
                    Some(s) if s.purpose == purpose && s.expires_at <= now() => Found::Expired(s),
                    Some(s) if s.purpose == purpose => Found::Live(s),
                    _ => Found::Missing,
                }
            }
        }
        Presented::Code { id, code } => match tx.one_time(id)? {
            None => Found::Missing,
            Some(s) if s.purpose != purpose => Found::Missing,
            Some(s) if s.expires_at <= now() => Found::Expired(s),
            Some(s) => {
                let ok = s.code_hash.as_deref().is_some_and(|h| key.code_matches(&s.id, code, h));
                if ok { Found::Live(s) } else { Found::WrongCode(s) }
            }
        },
    };
    Ok(match found {
        Found::Live(s) => {
            tx.delete_one_time(&s.id)?;
            Ok(s)
        }
        Found::Expired(s) => {
            tx.delete_one_time(&s.id)?;
            Err(Error::CodeExpired)
        }
        Found::WrongCode(mut s) => {
            s.attempts_left = s.attempts_left.saturating_sub(1);
            if s.attempts_left == 0 {
                tx.delete_one_time(&s.id)?;
            } else {
                tx.put_one_time(&s)?;
            }
            Err(Error::InvalidCode)
        }
        Found::Missing => Err(Error::InvalidCode),
    })
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
