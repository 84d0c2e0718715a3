//! The signing keys in memory: the one that signs, and every key that may still verify a live
//! token.

use std::collections::HashMap;

use crate::{
    model::{KeyState, SigningKeyRecord, now},
    security::jws::{self, KeyError, SigningKey, VerifyingKey},
};

/// The keys in memory: what signs, and what verifies.
pub struct KeyRing {
    pub active: SigningKey,
    pub verifying: HashMap<String, VerifyingKey>,
}

impl KeyRing {
    pub fn from_records(records: &[SigningKeyRecord]) -> Result<Self, KeyError> {
        let t = now();
        let active_rec = records
            .iter()
            .filter(|r| r.retire_at.is_none())
            .max_by_key(|r| r.created_at)
            .ok_or_else(|| KeyError::from_msg("no active signing key"))?;
        let active = jws::load_key(active_rec)?;
        let mut verifying = HashMap::new();
        for r in records.iter().filter(|r| r.state(t) != KeyState::Retired) {
            let key = jws::load_key(r)?;
            let valid_until = if r.kid == active.kid { None } else { r.retire_at.or(Some(t)) };
            verifying
                .insert(r.kid.clone(), VerifyingKey { alg: r.alg, public: key.public_bytes().to_vec(), valid_until });
        }
        Ok(Self { active, verifying })
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
