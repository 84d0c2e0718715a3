//! Proof-of-work challenges: a CAPTCHA that needs no third party.
//!
//! A challenge is `v1.<id>.<expires>.<difficulty>.<mac>` where `mac` is an HMAC-SHA256 over the
//! rest with a key that lives only in this process, so the server keeps no state per challenge
//! (only the ids of spent ones, until they expire). A solution is a decimal `nonce` such that
//! SHA-256(`<challenge>:<nonce>`) starts with `difficulty` zero bits.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ring::hmac;

use crate::{cache::Expiring, error::ChallengeError, model::now, security::random::random_bytes};

/// The longest challenge the issuer hands out, and the longest nonce that solves one.
pub const CHALLENGE_MAX_LEN: usize = 256;
pub const NONCE_MAX_LEN: usize = 32;

/// A challenge as handed to a client.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub challenge: String,
    pub difficulty: u8,
    pub expires_at: u64,
}

pub struct ChallengeIssuer {
    key: hmac::Key,
    difficulty: u8,
    ttl: Duration,
    spent: Expiring<String, ()>,
}

impl ChallengeIssuer {
    /// `key` signs and checks challenges: the same on every node, so any node can check a
    /// challenge another issued.
    pub fn new(key: &[u8], difficulty: u8, ttl: Duration) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            difficulty,
            ttl,
            spent: Expiring::new(1_000_000, ttl + Duration::from_secs(5)),
        }
    }

    pub fn issue(&self) -> Challenge {
        let expires_at = now() + self.ttl.as_secs();
        let body = format!("v1.{}.{expires_at}.{}", B64.encode(random_bytes::<16>()), self.difficulty);
        let mac = B64.encode(hmac::sign(&self.key, body.as_bytes()));
        Challenge { challenge: format!("{body}.{mac}"), difficulty: self.difficulty, expires_at }
    }

    /// How long a challenge can be spent: what a replay guard must remember it for.
    /// Forgets spent challenges that have expired anyway.
    pub fn sweep(&self) {
        self.spent.sweep();
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Checks a solution and spends the challenge.
    pub fn redeem(&self, challenge: &str, nonce: &str) -> Result<(), ChallengeError> {
        let id = self.check(challenge, nonce)?;
        self.spend(&id)
    }

    /// Spends a checked challenge in this process; a second time is a replay.
    pub fn spend(&self, id: &str) -> Result<(), ChallengeError> {
        if self.spent.claim(id.to_owned(), ()) { Ok(()) } else { Err(ChallengeError::Reused) }
    }

    /// Checks a solution without spending it; returns the challenge's id.
    pub fn check(&self, challenge: &str, nonce: &str) -> Result<String, ChallengeError> {
        if challenge.len() > CHALLENGE_MAX_LEN
            || nonce.is_empty()
            || nonce.len() > NONCE_MAX_LEN
            || !nonce.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ChallengeError::Invalid);
        }
        let (body, mac) = challenge.rsplit_once('.').ok_or(ChallengeError::Invalid)?;
        let mac = B64.decode(mac).map_err(|_| ChallengeError::Invalid)?;
        hmac::verify(&self.key, body.as_bytes(), &mac).map_err(|_| ChallengeError::Invalid)?;
        let mut parts = body.split('.');
        let (Some("v1"), Some(id), Some(exp), Some(diff), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ChallengeError::Invalid);
        };
        let exp: u64 = exp.parse().map_err(|_| ChallengeError::Invalid)?;
        let diff: u32 = diff.parse().map_err(|_| ChallengeError::Invalid)?;
        if exp <= now() {
            return Err(ChallengeError::Expired);
        }
        if leading_zero_bits(challenge, nonce) < diff {
            return Err(ChallengeError::Unsolved);
        }
        Ok(id.to_owned())
    }
}

fn leading_zero_bits(challenge: &str, nonce: &str) -> u32 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(challenge.as_bytes());
    ctx.update(b":");
    ctx.update(nonce.as_bytes());
    let digest = ctx.finish();
    let mut bits = 0;
    for byte in digest.as_ref() {
        if *byte == 0 {
            bits += 8;
        } else {
            bits += byte.leading_zeros();
            break;
        }
    }
    bits
}

/// The reference solver: tries nonces 0, 1, 2, … until one works.
pub fn solve(challenge: &str) -> Option<String> {
    let difficulty: u32 = challenge.split('.').nth(3)?.parse().ok()?;
    (0u64..u64::MAX).map(|n| n.to_string()).find(|n| leading_zero_bits(challenge, n) >= difficulty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solved_once_then_spent_and_forgeries_refused() {
        let issuer = ChallengeIssuer::new(&random_bytes::<32>(), 8, Duration::from_secs(60));
        let c = issuer.issue();
        let nonce = solve(&c.challenge).unwrap();
        assert_eq!(issuer.redeem(&c.challenge, &nonce), Ok(()));
        assert_eq!(issuer.redeem(&c.challenge, &nonce), Err(ChallengeError::Reused));

        let c = issuer.issue();
        let wrong = (0u64..).map(|n| n.to_string()).find(|n| leading_zero_bits(&c.challenge, n) < 8).unwrap();
        assert_eq!(issuer.redeem(&c.challenge, &wrong), Err(ChallengeError::Unsolved));
        let easier = c.challenge.replacen(".8.", ".0.", 1);
        assert_eq!(issuer.redeem(&easier, "0"), Err(ChallengeError::Invalid), "difficulty is signed");
        let other = ChallengeIssuer::new(&random_bytes::<32>(), 8, Duration::from_secs(60)).issue();
        assert_eq!(issuer.redeem(&other.challenge, &solve(&other.challenge).unwrap()), Err(ChallengeError::Invalid));
        assert_eq!(issuer.redeem(&c.challenge, "12x"), Err(ChallengeError::Invalid));

        let expired = ChallengeIssuer::new(&random_bytes::<32>(), 0, Duration::from_secs(0));
        let c = expired.issue();
        assert_eq!(expired.redeem(&c.challenge, "0"), Err(ChallengeError::Expired));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn arbitrary_solutions_are_refused(challenge in ".{0,300}", nonce in ".{0,40}") {
                let issuer = ChallengeIssuer::new(&[7; 32], 8, Duration::from_secs(60));
                prop_assert!(issuer.check(&challenge, &nonce).is_err());
            }
        }

        #[test]
        fn the_seed_corpus_is_refused() {
            let issuer = ChallengeIssuer::new(&[7; 32], 8, Duration::from_secs(60));
            for line in include_str!("../../fuzz/seeds/challenge.txt").lines() {
                assert!(issuer.check(line, "0").is_err(), "{line}");
            }
        }
    }
}
