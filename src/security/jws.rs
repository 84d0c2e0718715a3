//! Compact JWS (RFC 7515) for access, ID and logout tokens: EdDSA (Ed25519) and ES256 on ring,
//! RS256 on aws-lc (ring signs RSA but cannot make the keys).
//!
//! Verification is strict on purpose (RFC 8725): the algorithm comes from our key, never from
//! the header; the header may hold exactly `alg`, `typ` and `kid`; duplicate or unknown members,
//! padding or non-canonical base64 are refused.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ring::{
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    config::SigningAlgorithm,
    error::TokenError,
    model::{SigningKeyRecord, UnixTime},
};

/// Media type of our access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Anything longer is refused before decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("signing key: {0}")]
pub struct KeyError(String);

impl KeyError {
    pub fn from_msg(m: &str) -> Self {
        Self(m.to_owned())
    }
}

enum Signer {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

/// A private key that can sign, with its public half.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    signer: Signer,
    public: Vec<u8>,
}

/// Makes a new PKCS#8 private key and its record.
pub fn generate_key(alg: SigningAlgorithm, now: UnixTime) -> Result<SigningKeyRecord, KeyError> {
    let rng = SystemRandom::new();
    fn failed<E>(_: E) -> KeyError {
        KeyError("key generation failed".into())
    }
    let pkcs8 = match alg {
        SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng).map_err(failed)?.as_ref().to_vec(),
        SigningAlgorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::RS256 => {
            use aws_lc_rs::encoding::AsDer as _;
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(failed)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = key.as_der().map_err(failed)?;
            der.as_ref().to_vec()
        }
    };
    let key = load(alg, &pkcs8, String::new())?;
    Ok(SigningKeyRecord { kid: thumbprint(alg, &key.public), alg, pkcs8, created_at: now, retire_at: None })
}

pub fn load_key(rec: &SigningKeyRecord) -> Result<SigningKey, KeyError> {
    load(rec.alg, &rec.pkcs8, rec.kid.clone())
}

fn load(alg: SigningAlgorithm, pkcs8: &[u8], kid: String) -> Result<SigningKey, KeyError> {
    let signer = match alg {
        SigningAlgorithm::EdDSA => {
            Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| KeyError(format!("bad Ed25519 key: {e}")))?)
        }
        SigningAlgorithm::ES256 => Signer::Ec(
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
                .map_err(|e| KeyError(format!("bad P-256 key: {e}")))?,
        ),
        SigningAlgorithm::RS256 => {
            Signer::Rsa(aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map_err(|e| KeyError(format!("bad RSA key: {e}")))?)
        }
    };
    let public = match &signer {
        Signer::Ed(k) => k.public_key().as_ref().to_vec(),
        Signer::Ec(k) => k.public_key().as_ref().to_vec(),
        Signer::Rsa(k) => {
            let p = aws_lc_rs::signature::KeyPair::public_key(k);
            rsa_public(p.modulus().big_endian_without_leading_zero(), p.exponent().big_endian_without_leading_zero())
        }
    };
    Ok(SigningKey { kid, alg, signer, public })
}

/// An RSA public key as we hold it: the length of `n` (2 bytes, big-endian), `n`, then `e`.
fn rsa_public(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(n.len()).unwrap_or(0).to_be_bytes().to_vec();
    out.extend_from_slice(n);
    out.extend_from_slice(e);
    out
}

/// `(n, e)` of an RSA public key held as [`rsa_public`] makes it.
fn rsa_parts(public: &[u8]) -> (&[u8], &[u8]) {
    let n_len =
        usize::from(u16::from_be_bytes([public.first().copied().unwrap_or(0), public.get(1).copied().unwrap_or(0)]));
    let rest = public.get(2..).unwrap_or_default();
    rest.split_at(n_len.min(rest.len()))
}

/// The RFC 7517 members that identify a public key, in lexicographic order (RFC 7638).
fn required_members(alg: SigningAlgorithm, public: &[u8]) -> serde_json::Value {
    match alg {
        SigningAlgorithm::RS256 => {
            let (n, e) = rsa_parts(public);
            serde_json::json!({"e": B64.encode(e), "kty": "RSA", "n": B64.encode(n)})
        }
        SigningAlgorithm::EdDSA => {
            serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": B64.encode(public)})
        }
        SigningAlgorithm::ES256 => {
            let (x, y) = public.get(1..).unwrap_or_default().split_at(public.len().saturating_sub(1) / 2);
            serde_json::json!({"crv": "P-256", "kty": "EC", "x": B64.encode(x), "y": B64.encode(y)})
        }
    }
}

/// RFC 7638 thumbprint, used as `kid`.
fn thumbprint(alg: SigningAlgorithm, public: &[u8]) -> String {
    let canonical = required_members(alg, public).to_string();
    B64.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
}

/// A public key as a JWKS entry.
pub fn public_jwk(alg: SigningAlgorithm, kid: &str, public: &[u8]) -> serde_json::Value {
    let mut jwk = required_members(alg, public);
    if let Some(o) = jwk.as_object_mut() {
        o.insert("kid".into(), kid.into());
        o.insert("alg".into(), alg.as_str().into());
        o.insert("use".into(), "sig".into());
    }
    jwk
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// Claims of an access token (RFC 9068 plus `sid` and `roles`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    /// UUIDv7: its timestamp orders tokens finer than `iat`.
    pub jti: Uuid,
    pub sid: Uuid,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Expanded permissions, when `tokens.include_permissions` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// Set when the subject is a service client (`client_credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Uuid>,
    /// The subject's authorization generation when the token was minted.
    #[serde(default)]
    pub authz_gen: u64,
    /// How the user authenticated (RFC 8176): `pwd`, `otp`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// When the user last authenticated (OIDC `auth_time`); refreshes keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// Whether the email was confirmed, when email verification is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The relying party the token was issued to through the OpenID flow; such a token serves
    /// that application's `scope`, not authd's own account endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl AccessClaims {
    /// Bytes a cached copy takes, roughly: the record, its strings, the cache's key and entry.
    pub fn approximate_size(&self) -> u32 {
        let strings = |v: &[String]| v.iter().map(|s| s.len() + std::mem::size_of::<String>()).sum::<usize>();
        let heap = self.iss.len()
            + self.aud.len()
            + strings(&self.roles)
            + self.preferred_username.as_ref().map_or(0, String::len)
            + self.permissions.as_deref().map_or(0, strings)
            + strings(&self.amr)
            + self.scope.as_ref().map_or(0, String::len);
        u32::try_from(std::mem::size_of::<Self>() + heap + 32 + 128).unwrap_or(u32::MAX)
    }
}

impl SigningKey {
    pub fn public_bytes(&self) -> &[u8] {
        &self.public
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        self.sign_as(ACCESS_TOKEN_TYP, claims)
    }

    /// Signs any claims under the media type `typ` (`JWT` for ID tokens, `logout+jwt`).
    pub fn sign_as<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String, KeyError> {
        let header = Header { alg: self.alg.as_str().into(), typ: typ.into(), kid: self.kid.clone() };
        let h = serde_json::to_vec(&header).map_err(|e| KeyError(e.to_string()))?;
        let c = serde_json::to_vec(claims).map_err(|e| KeyError(e.to_string()))?;
        let mut out = String::with_capacity(400);
        B64.encode_string(h, &mut out);
        out.push('.');
        B64.encode_string(c, &mut out);
        let sig = match &self.signer {
            Signer::Ed(k) => k.sign(out.as_bytes()).as_ref().to_vec(),
            Signer::Ec(k) => {
                let mut sig = k
                    .sign(&SystemRandom::new(), out.as_bytes())
                    .map_err(|_| KeyError("ECDSA signing failed".into()))?
                    .as_ref()
                    .to_vec();
                low_s::normalize(&mut sig);
                sig
            }
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    out.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| KeyError("RSA signing failed".into()))?;
                sig
            }
        };
        out.push('.');
        B64.encode_string(sig, &mut out);
        Ok(out)
    }
}

/// A public key that verifies until `valid_until` (`None`: the active key).
pub struct VerifyingKey {
    pub alg: SigningAlgorithm,
    pub public: Vec<u8>,
    pub valid_until: Option<UnixTime>,
}

/// What a token must say besides carrying a good signature.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub leeway: u64,
    pub now: UnixTime,
}

/// Checks signature, header and time/issuer/audience claims. Revocation is the caller's part.
pub fn verify(
    token: &str,
    keys: &HashMap<String, VerifyingKey>,
    expect: &Expectations<'_>,
) -> Result<AccessClaims, TokenError> {
    let claims_bytes = verify_signature(token, keys, ACCESS_TOKEN_TYP, expect.now)?;
    let claims: AccessClaims = serde_json::from_slice(&claims_bytes).map_err(|_| TokenError::BadClaims)?;
    if claims.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != expect.audience {
        return Err(TokenError::WrongAudience);
    }
    if claims.exp.saturating_add(expect.leeway) <= expect.now {
        return Err(TokenError::Expired);
    }
    if claims.nbf > expect.now.saturating_add(expect.leeway) || claims.iat > expect.now.saturating_add(expect.leeway) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// Checks the header (exactly `alg`, `typ` = `typ`, a `kid` of ours) and the signature; returns
/// the claims' bytes, unread.
pub fn verify_signature(
    token: &str,
    keys: &HashMap<String, VerifyingKey>,
    typ: &str,
    now: UnixTime,
) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let header_bytes = B64.decode(h64).map_err(|_| TokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| TokenError::BadHeader)?;
    if header.typ != typ {
        return Err(TokenError::BadHeader);
    }
    let key = keys.get(&header.kid).ok_or(TokenError::UnknownKey)?;
    if key.valid_until.is_some_and(|t| t <= now) {
        return Err(TokenError::UnknownKey);
    }
    if header.alg != key.alg.as_str() {
        return Err(TokenError::BadHeader);
    }
    let sig = B64.decode(s64).map_err(|_| TokenError::Malformed)?;
    // (r, s) and (r, n−s) both verify; only the low-S form is ours, so that one token has
    // exactly one string.
    if key.alg == SigningAlgorithm::ES256 && !low_s::is_low(&sig) {
        return Err(TokenError::BadSignature);
    }
    let signed_len = h64.len() + 1 + c64.len();
    let signed = token.get(..signed_len).ok_or(TokenError::Malformed)?;
    let checked = match key.alg {
        SigningAlgorithm::EdDSA => {
            UnparsedPublicKey::new(&signature::ED25519, &key.public).verify(signed.as_bytes(), &sig)
        }
        SigningAlgorithm::ES256 => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &key.public).verify(signed.as_bytes(), &sig)
        }
        SigningAlgorithm::RS256 => {
            let (n, e) = rsa_parts(&key.public);
            signature::RsaPublicKeyComponents { n, e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                signed.as_bytes(),
                &sig,
            )
        }
    };
    checked.map_err(|_| TokenError::BadSignature)?;
    B64.decode(c64).map_err(|_| TokenError::Malformed)
}

/// ECDSA P-256 signature malleability (the "low-S" rule of BIP 62, applied to JWS ES256).
mod low_s {
    /// The order n of the P-256 group, big-endian.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6,
        0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ];
    /// ⌊n / 2⌋.
    const HALF_N: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0x73,
        0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
    ];

    /// `s` of a fixed-size `r || s` signature is at most n/2.
    pub fn is_low(sig: &[u8]) -> bool {
        sig.len() == 64 && sig[32..] <= HALF_N[..]
    }

    /// Replaces a high `s` with n − s, which verifies just the same.
    pub fn normalize(sig: &mut [u8]) {
        if sig.len() == 64 && !is_low(sig) {
            flip(sig);
        }
    }

    /// `s` becomes n − s.
    pub fn flip(sig: &mut [u8]) {
        let Some(s) = sig.get_mut(32..64) else { return };
        let mut borrow = 0i16;
        for (n, b) in N.iter().zip(s.iter_mut()).rev() {
            let d = i16::from(*n) - i16::from(*b) - borrow;
            borrow = i16::from(d < 0);
            *b = u8::try_from(d.rem_euclid(256)).unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: u64) -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            aud: "authd".into(),
            sub: Uuid::now_v7(),
            exp: now + 900,
            iat: now,
            nbf: now,
            jti: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            roles: vec!["user".into()],
            preferred_username: None,
            permissions: None,
            client_id: None,
            authz_gen: 0,
            amr: Vec::new(),
            auth_time: None,
            email_verified: None,
            azp: None,
            scope: None,
        }
    }

    fn setup(alg: SigningAlgorithm) -> (SigningKey, HashMap<String, VerifyingKey>) {
        let rec = generate_key(alg, 0).unwrap();
        let key = load_key(&rec).unwrap();
        let mut keys = HashMap::new();
        keys.insert(key.kid.clone(), VerifyingKey { alg, public: key.public.clone(), valid_until: None });
        (key, keys)
    }

    fn expect(now: u64) -> Expectations<'static> {
        Expectations { issuer: "https://auth.example", audience: "authd", leeway: 30, now }
    }

    #[test]
    fn every_algorithm_round_trips() {
        for alg in SigningAlgorithm::ALL {
            let (key, keys) = setup(alg);
            let c = claims(1_000_000);
            let t = key.sign(&c).unwrap();
            assert_eq!(verify(&t, &keys, &expect(1_000_000)).unwrap(), c);
        }
    }

    #[test]
    fn es256_signatures_are_low_s_and_the_high_s_twin_is_refused() {
        let (key, keys) = setup(SigningAlgorithm::ES256);
        for _ in 0..20 {
            let t = key.sign(&claims(1_000_000)).unwrap();
            let (signed, s64) = t.rsplit_once('.').unwrap();
            let mut sig = B64.decode(s64).unwrap();
            assert!(low_s::is_low(&sig));
            low_s::flip(&mut sig);
            assert!(!low_s::is_low(&sig));
            let twin = format!("{signed}.{}", B64.encode(&sig));
            // The twin is a valid ECDSA signature: ring alone accepts it.
            let public = &keys.values().next().unwrap().public;
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public)
                .verify(signed.as_bytes(), &sig)
                .unwrap();
            assert_eq!(verify(&twin, &keys, &expect(1_000_000)), Err(TokenError::BadSignature));
            assert!(verify(&t, &keys, &expect(1_000_000)).is_ok());
        }
    }

    #[test]
    fn tampering_and_time_are_refused() {
        let (key, keys) = setup(SigningAlgorithm::EdDSA);
        let now = 1_000_000;
        let t = key.sign(&claims(now)).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let other = key.sign(&AccessClaims { roles: vec!["admin".into()], ..claims(now) }).unwrap();
        let other_claims = other.split('.').nth(1).unwrap();
        let swapped = format!("{}.{}.{}", parts[0], other_claims, parts[2]);
        let cases: Vec<(String, TokenError)> = vec![
            (swapped, TokenError::BadSignature),
            (format!("{}.{}", parts[0], parts[1]), TokenError::Malformed),
            (format!("{t}.x"), TokenError::Malformed),
            (format!("{t}="), TokenError::Malformed),
            ("a".repeat(10_000), TokenError::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(verify(&token, &keys, &expect(now)), Err(want));
        }
        assert_eq!(verify(&t, &keys, &expect(now + 2000)), Err(TokenError::Expired));
        assert_eq!(verify(&t, &keys, &expect(now - 100)), Err(TokenError::NotYetValid));
        let wrong_iss = Expectations { issuer: "other", ..expect(now) };
        assert_eq!(verify(&t, &keys, &wrong_iss), Err(TokenError::WrongIssuer));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Anything at all is refused cleanly.
            #[test]
            fn arbitrary_text_is_refused(s in ".{0,700}") {
                let (_, keys) = setup(SigningAlgorithm::EdDSA);
                prop_assert!(verify(&s, &keys, &expect(1_000_000)).is_err());
            }

            /// Three base64url parts of arbitrary bytes (the shape a parser sees most) too.
            #[test]
            fn arbitrary_parts_are_refused(h in proptest::collection::vec(any::<u8>(), 0..200),
                                           c in proptest::collection::vec(any::<u8>(), 0..300),
                                           sig in proptest::collection::vec(any::<u8>(), 0..80)) {
                let (_, keys) = setup(SigningAlgorithm::ES256);
                let t = format!("{}.{}.{}", B64.encode(h), B64.encode(c), B64.encode(sig));
                prop_assert!(verify(&t, &keys, &expect(1_000_000)).is_err());
            }

            /// A valid token with any one character changed is refused.
            #[test]
            fn one_changed_character_is_refused(at in any::<usize>(), with in "[A-Za-z0-9_.-]") {
                for alg in [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256] {
                    let (key, keys) = setup(alg);
                    let token = key.sign(&claims(1_000_000)).unwrap();
                    let i = at % token.len();
                    let mut changed = token.clone();
                    changed.replace_range(i..=i, &with);
                    if changed != token {
                        prop_assert!(verify(&changed, &keys, &expect(1_000_000)).is_err(), "{changed}");
                    }
                }
            }
        }

        #[test]
        fn the_seed_corpus_is_refused() {
            let (_, keys) = setup(SigningAlgorithm::EdDSA);
            for line in include_str!("../../fuzz/seeds/jws.txt").lines() {
                assert!(verify(line, &keys, &expect(1_000_000)).is_err(), "{line}");
            }
        }
    }
}
