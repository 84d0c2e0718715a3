//! Opaque tokens as clients present them (refresh tokens, links' tokens, exchange codes, the
//! `state` of a login at a provider): what length one may have is written here only.

use super::random::token_hash;

/// A presented opaque token: not empty, at most [`OpaqueToken::MAX_LEN`] bytes. Every token
/// authd issues is 43 characters; the bound keeps a client from making the server hash
/// megabytes.
#[derive(Clone, Copy)]
pub struct OpaqueToken<'a>(&'a str);

impl<'a> OpaqueToken<'a> {
    pub const MAX_LEN: usize = 512;

    /// `None` for what cannot be a token of ours.
    pub fn parse(s: &'a str) -> Option<Self> {
        (!s.is_empty() && s.len() <= Self::MAX_LEN).then_some(Self(s))
    }

    /// The hash it is stored and looked up by.
    pub fn hash(self) -> [u8; 32] {
        token_hash(self.0)
    }

    pub fn as_str(self) -> &'a str {
        self.0
    }
}

impl std::fmt::Debug for OpaqueToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_oversized_tokens_are_refused_and_the_bound_is_inclusive() {
        assert!(OpaqueToken::parse("").is_none());
        assert!(OpaqueToken::parse(&"a".repeat(OpaqueToken::MAX_LEN + 1)).is_none());
        let longest = "a".repeat(OpaqueToken::MAX_LEN);
        assert_eq!(OpaqueToken::parse(&longest).map(OpaqueToken::hash), Some(token_hash(&longest)));
    }
}
