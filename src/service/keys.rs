//! Signing keys: one active key signs; replaced keys keep verifying until every token they
//! signed has expired, and stay listed in the JWKS until then.

use std::sync::Arc;

use super::{authority::Principal, core::Core, db::Tx};
use crate::security::key_ring::KeyRing;
use crate::{
    config::SigningAlgorithm,
    error::{Error, Result},
    model::{KeyState, SigningKeyRecord, UnixTime, now},
    security::jws::{self},
    store::StoreError,
};

/// A key as the CLI lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub created_at: UnixTime,
    pub retire_at: Option<UnixTime>,
}

/// Makes sure one key of each algorithm is active, creating those missing (all of them on a new
/// database; the ID-token algorithms on one from before ID tokens).
pub(super) fn ensure_active_key(tx: &mut Tx<'_>) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let mut records = tx.signing_keys()?;
    for alg in SigningAlgorithm::ALL {
        if !records.iter().any(|r| r.retire_at.is_none() && r.alg == alg) {
            let rec = jws::generate_key(alg, now()).map_err(|e| StoreError::Codec(e.to_string()))?;
            tx.put_signing_key(&rec)?;
            records.push(rec);
        }
    }
    Ok(records)
}

/// The signing keys: the ring in memory, listing and rotation.
pub struct Keys {
    core: Arc<Core>,
}

impl Keys {
    pub(super) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// What signs and verifies now.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.core.key_ring()
    }

    /// Needs `keys:read`.
    pub async fn list(&self, by: &Principal) -> Result<Vec<KeyInfo>> {
        self.core.authority(by, "keys:read")?;
        let records = self.core.db(|s| s.read(|tx| tx.signing_keys().map_err(Error::from))).await?;
        let t = now();
        let mut out: Vec<KeyInfo> = records
            .iter()
            .map(|r| KeyInfo {
                kid: r.kid.clone(),
                alg: r.alg.as_str().into(),
                state: r.state(t).as_str().into(),
                created_at: r.created_at,
                retire_at: r.retire_at,
            })
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.kid.cmp(&b.kid)));
        Ok(out)
    }

    /// A new key of each algorithm signs from now on; the old ones verify until their last
    /// token expires. Answers with the new access-token key. Needs `keys:rotate`.
    pub async fn rotate(&self, by: &Principal) -> Result<KeyInfo> {
        self.core.authority(by, "keys:rotate")?;
        let alg = self.core.cfg.tokens.algorithm;
        let retire_at = self.core.last_token_expiry();
        let (records, new) = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let t = now();
                    let fresh = SigningAlgorithm::ALL
                        .into_iter()
                        .map(|a| jws::generate_key(a, t).map_err(|e| Error::Internal(e.to_string())))
                        .collect::<Result<Vec<_>>>()?;
                    for mut r in tx.signing_keys()? {
                        if r.retire_at.is_none() {
                            r.retire_at = Some(retire_at);
                            tx.put_signing_key(&r)?;
                        }
                    }
                    for k in &fresh {
                        tx.put_signing_key(k)?;
                    }
                    let kids: Vec<&str> = fresh.iter().map(|k| k.kid.as_str()).collect();
                    let new =
                        fresh.iter().find(|k| k.alg == alg).cloned().ok_or(Error::Internal("no key made".into()))?;
                    tx.audit("key.rotated", None, None, serde_json::json!({"kid": new.kid, "kids": kids}))?;
                    Ok((tx.signing_keys()?, new))
                })
            })
            .await?;
        self.core.install_keys(&records)?;
        tracing::info!(kid = %new.kid, alg = new.alg.as_str(), "signing key rotated");
        Ok(KeyInfo {
            kid: new.kid,
            alg: new.alg.as_str().into(),
            state: KeyState::Active.as_str().into(),
            created_at: new.created_at,
            retire_at: None,
        })
    }
}
