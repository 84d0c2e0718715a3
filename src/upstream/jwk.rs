//! A provider's public keys (RFC 7517) and signature checks with ring.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

/// Signing algorithms an ID token may use: asymmetric only (no `none`, no HMAC, whose "key"
/// would be public).
pub const ACCEPTED: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub usage: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Jwks {
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

fn kty_for(alg: &str) -> &'static str {
    match alg {
        "ES256" | "ES384" => "EC",
        "EdDSA" => "OKP",
        _ => "RSA",
    }
}

impl Jwks {
    /// The signing key for `alg` named by `kid` (or the only one of its type when the token
    /// names none).
    pub fn find(&self, kid: Option<&str>, alg: &str) -> Option<&Jwk> {
        let usable = |k: &&Jwk| {
            k.kty == kty_for(alg)
                && k.usage.as_deref().is_none_or(|u| u == "sig")
                && k.alg.as_deref().is_none_or(|a| a == alg)
        };
        match kid {
            Some(kid) => self.keys.iter().filter(usable).find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut candidates = self.keys.iter().filter(usable);
                let first = candidates.next();
                if candidates.next().is_some() { None } else { first }
            }
        }
    }
}

impl Jwk {
    pub fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> bool {
        let b = |v: &Option<String>| v.as_deref().and_then(|s| B64.decode(s).ok());
        match alg {
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
                let (Some(n), Some(e)) = (b(&self.n), b(&self.e)) else { return false };
                let params: &signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n: &n, e: &e }.verify(params, message, sig).is_ok()
            }
            "ES256" | "ES384" => {
                let (Some(x), Some(y)) = (b(&self.x), b(&self.y)) else { return false };
                let (crv, algorithm) = match alg {
                    "ES256" => ("P-256", &signature::ECDSA_P256_SHA256_FIXED),
                    _ => ("P-384", &signature::ECDSA_P384_SHA384_FIXED),
                };
                if self.crv.as_deref() != Some(crv) {
                    return false;
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                UnparsedPublicKey::new(algorithm, point).verify(message, sig).is_ok()
            }
            "EdDSA" => {
                let Some(x) = b(&self.x) else { return false };
                self.crv.as_deref() == Some("Ed25519")
                    && UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig).is_ok()
            }
            _ => false,
        }
    }
}
