use serde::{Deserialize, Serialize};

use super::UnixTime;
use crate::config::SigningAlgorithm;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Signs new tokens.
    Active,
    /// Still verifies tokens it signed, until `retire_at`.
    Retiring,
    /// Past `retire_at`: in no JWKS and verifies nothing.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// PKCS#8 DER, base64 in the record.
    #[serde(with = "b64")]
    pub pkcs8: Vec<u8>,
    pub created_at: UnixTime,
    /// `None` while active; when it was replaced, the instant after which nothing it signed is
    /// still valid.
    #[serde(default)]
    pub retire_at: Option<UnixTime>,
}

impl SigningKeyRecord {
    pub fn state(&self, now: UnixTime) -> KeyState {
        match self.retire_at {
            None => KeyState::Active,
            Some(t) if t > now => KeyState::Retiring,
            Some(_) => KeyState::Retired,
        }
    }
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

mod b64 {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}
