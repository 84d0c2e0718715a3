//! The data key: encrypts what must be readable again (TOTP secrets, queued messages) and keys
//! the hashes of short codes, so that a copy of the database alone yields neither.

use std::{io::Write as _, path::Path};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ring::{aead, hmac};

use super::random::random_bytes;

pub struct DataKey {
    seal: aead::LessSafeKey,
    codes: hmac::Key,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(********)")
    }
}

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
#[error("sealed data does not open with this data key")]
pub struct Unsealable;

impl DataKey {
    pub fn new(raw: &[u8; 32]) -> Result<Self, Unsealable> {
        // Separate subkeys per use, derived from the one configured key.
        let root = hmac::Key::new(hmac::HMAC_SHA256, raw);
        let sub = |label: &[u8]| hmac::sign(&root, label);
        let seal_key = sub(b"authd seal v1");
        let codes_key = sub(b"authd codes v1");
        let unbound = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, seal_key.as_ref()).map_err(|_| Unsealable)?;
        Ok(Self { seal: aead::LessSafeKey::new(unbound), codes: hmac::Key::new(hmac::HMAC_SHA256, codes_key.as_ref()) })
    }

    /// `v1.<base64url(nonce ‖ ciphertext ‖ tag)>`; `context` (e.g. the record it belongs to)
    /// must be given again to open it, so a value moved to another record does not open.
    pub fn seal(&self, context: &str, plain: &[u8]) -> String {
        let nonce_bytes = random_bytes::<12>();
        let nonce = aead::Nonce::assume_unique_for_key(nonce_bytes);
        let mut buf = plain.to_vec();
        // Sealing only fails for inputs of gigabytes.
        if self.seal.seal_in_place_append_tag(nonce, aead::Aad::from(context.as_bytes()), &mut buf).is_err() {
            return String::new();
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        format!("v1.{}", B64.encode(out))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, Unsealable> {
        let raw = B64.decode(sealed.strip_prefix("v1.").ok_or(Unsealable)?).map_err(|_| Unsealable)?;
        if raw.len() < 12 + aead::CHACHA20_POLY1305.tag_len() {
            return Err(Unsealable);
        }
        let (nonce, ct) = raw.split_at(12);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut buf = ct.to_vec();
        let plain =
            self.seal.open_in_place(nonce, aead::Aad::from(context.as_bytes()), &mut buf).map_err(|_| Unsealable)?;
        Ok(plain.to_vec())
    }

    /// The stored form of a short code typed by hand, bound to the secret it belongs to.
    pub fn code_hash(&self, id: &str, code: &str) -> Vec<u8> {
        hmac::sign(&self.codes, format!("{id}\0{code}").as_bytes()).as_ref().to_vec()
    }

    /// Compares a typed code with its stored hash in constant time.
    pub fn code_matches(&self, id: &str, code: &str, stored: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.code_hash(id, code).as_slice().ct_eq(stored))
    }
}

/// Reads the key file, or creates it (mode 0600) with a fresh random key.
pub fn load_or_create(path: &Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let raw = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| bad_file(path))?;
            raw.try_into().map_err(|_| bad_file(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_bytes::<32>();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path)?;
            writeln!(f, "{}", base64::engine::general_purpose::STANDARD.encode(key))?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

fn bad_file(path: &Path) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} does not hold base64 of 32 bytes", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let k = DataKey::new(&[7; 32]).unwrap();
        let s = k.seal("totp:1", b"secret");
        assert_eq!(k.open("totp:1", &s).unwrap(), b"secret");
        assert!(k.open("totp:2", &s).is_err());
        assert!(DataKey::new(&[8; 32]).unwrap().open("totp:1", &s).is_err());
        assert!(k.open("totp:1", "v1.AAAA").is_err());
        assert_ne!(k.seal("totp:1", b"secret"), s, "nonces differ");
    }

    #[test]
    fn code_hashes_are_bound_to_their_secret() {
        let k = DataKey::new(&[7; 32]).unwrap();
        let h = k.code_hash("verify_email:u", "123456");
        assert!(k.code_matches("verify_email:u", "123456", &h));
        assert!(!k.code_matches("password_reset:u", "123456", &h));
        assert!(!k.code_matches("verify_email:u", "123457", &h));
    }
}
