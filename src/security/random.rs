//! Opaque secrets: generated from the OS CSPRNG, stored only as hashes.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ring::rand::{SecureRandom, SystemRandom};

/// 256 random bits, base64url (43 characters).
pub fn new_token() -> String {
    B64.encode(random_bytes::<32>())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator failing is not something a server can carry on from.
    #[allow(clippy::expect_used)]
    SystemRandom::new().fill(&mut buf).expect("the operating system's random generator failed");
    buf
}

/// What is stored instead of an opaque token: a lookup by hash needs no constant-time compare,
/// since the 256-bit secret cannot be guessed byte by byte through the index.
pub fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_hash_stably() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
