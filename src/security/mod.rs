//! Self-contained primitives: password hashing and policy, compact JWS, identifier parsing,
//! opaque random tokens.

pub mod captcha;
pub mod identifiers;
pub mod jws;
pub mod key_ring;
pub mod limits;
pub mod passphrase;
pub mod password;
pub mod pow;
pub mod random;
pub mod sealed;
pub mod signature;
pub mod targets;
pub mod throttle;
pub mod token;
