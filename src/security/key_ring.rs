//! The signing keys in memory: the active key of each algorithm, and every key that may still
//! verify a live token.

use std::collections::HashMap;

use crate::{
    config::SigningAlgorithm,
    model::{KeyState, SigningKeyRecord, now},
    security::jws::{self, KeyError, SigningKey, VerifyingKey},
};

/// The keys in memory: what signs, and what verifies.
pub struct KeyRing {
    /// Signs access tokens (`tokens.algorithm`).
    pub active: SigningKey,
    /// The active keys of the other algorithms, for ID and logout tokens.
    others: Vec<SigningKey>,
    pub verifying: HashMap<String, VerifyingKey>,
}

impl KeyRing {
    pub fn from_records(records: &[SigningKeyRecord], access: SigningAlgorithm) -> Result<Self, KeyError> {
        let t = now();
        let newest_active = |alg: SigningAlgorithm| {
            records
                .iter()
                .filter(|r| r.retire_at.is_none() && r.alg == alg)
                .max_by_key(|r| (r.created_at, r.kid.clone()))
        };
        let active_rec = newest_active(access).ok_or_else(|| KeyError::from_msg("no active signing key"))?;
        let active = jws::load_key(active_rec)?;
        let mut others = Vec::new();
        for alg in SigningAlgorithm::ALL.into_iter().filter(|a| *a != access) {
            if let Some(r) = newest_active(alg) {
                others.push(jws::load_key(r)?);
            }
        }
        let signing: Vec<&str> =
            std::iter::once(active.kid.as_str()).chain(others.iter().map(|k| k.kid.as_str())).collect();
        let mut verifying = HashMap::new();
        for r in records.iter().filter(|r| r.state(t) != KeyState::Retired) {
            let key = jws::load_key(r)?;
            // An active key that lost the race to another node's (same algorithm) verifies what
            // it signed until its tokens could have expired, like any replaced key.
            let valid_until = if signing.contains(&r.kid.as_str()) { None } else { r.retire_at.or(Some(t)) };
            verifying
                .insert(r.kid.clone(), VerifyingKey { alg: r.alg, public: key.public_bytes().to_vec(), valid_until });
        }
        Ok(Self { active, others, verifying })
    }

    /// The active key of `alg`.
    pub fn signer(&self, alg: SigningAlgorithm) -> Option<&SigningKey> {
        if self.active.alg == alg { Some(&self.active) } else { self.others.iter().find(|k| k.alg == alg) }
    }

    /// RFC 7517 key set of every key that may still verify a live token.
    pub fn jwks(&self) -> serde_json::Value {
        let t = now();
        let mut live: Vec<_> = self.verifying.iter().filter(|(_, k)| k.valid_until.is_none_or(|u| u > t)).collect();
        // The same set reads the same on every node and at every start: the signing key first.
        live.sort_by_key(|(kid, _)| (**kid != self.active.kid, (*kid).clone()));
        let keys: Vec<_> = live.into_iter().map(|(kid, k)| jws::public_jwk(k.alg, kid, &k.public)).collect();
        serde_json::json!({ "keys": keys })
    }
}
