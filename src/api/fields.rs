//! String fields whose limits are the domain's own: the API document and the check a request
//! meets take them from the same constants as the parsers in `security`.

use std::{borrow::Cow, marker::PhantomData};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use crate::security::{
    captcha,
    identifiers::{Email, Phone, Username},
    pow,
    token::OpaqueToken,
};

/// The limits of one kind of field.
pub trait Limits: Send + Sync + 'static {
    const MAX_LENGTH: Option<usize> = None;
    const PATTERN: Option<&'static str> = None;
}

/// An opaque token (a refresh token, a link's token, a code to exchange, a login's `state`).
pub struct TokenLimits;
impl Limits for TokenLimits {
    const MAX_LENGTH: Option<usize> = Some(OpaqueToken::MAX_LEN);
}

/// An email address, or a login name of any kind (an email is the longest).
pub struct EmailLimits;
impl Limits for EmailLimits {
    const MAX_LENGTH: Option<usize> = Some(Email::MAX_LEN);
}

pub struct PhoneLimits;
impl Limits for PhoneLimits {
    const MAX_LENGTH: Option<usize> = Some(Phone::MAX_LEN);
}

pub struct UsernameLimits;
impl Limits for UsernameLimits {
    const PATTERN: Option<&'static str> = Some(Username::PATTERN);
}

/// A proof-of-work challenge as handed out.
pub struct ChallengeLimits;
impl Limits for ChallengeLimits {
    const MAX_LENGTH: Option<usize> = Some(pow::CHALLENGE_MAX_LEN);
}

/// The nonce that solves a challenge.
pub struct NonceLimits;
impl Limits for NonceLimits {
    const MAX_LENGTH: Option<usize> = Some(pow::NONCE_MAX_LEN);
}

/// A CAPTCHA widget's response token.
pub struct CaptchaLimits;
impl Limits for CaptchaLimits {
    const MAX_LENGTH: Option<usize> = Some(captcha::RESPONSE_MAX_LEN);
}

/// A string within `L`'s limits. The document states them, and bodies are checked against the
/// document before they are parsed; a parameter is checked here.
pub struct Bounded<L>(pub String, PhantomData<L>);

pub type TokenField = Bounded<TokenLimits>;
pub type EmailField = Bounded<EmailLimits>;
pub type LoginField = Bounded<EmailLimits>;
pub type PhoneField = Bounded<PhoneLimits>;
pub type UsernameField = Bounded<UsernameLimits>;
pub type ChallengeField = Bounded<ChallengeLimits>;
pub type NonceField = Bounded<NonceLimits>;
pub type CaptchaField = Bounded<CaptchaLimits>;

impl<L> Bounded<L> {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<L> std::ops::Deref for Bounded<L> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<L: Limits> Type for Bounded<L> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            max_length: L::MAX_LENGTH,
            pattern: L::PATTERN.map(str::to_owned),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<L: Limits> ParseFromJSON for Bounded<L> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Ok(Self(s, PhantomData)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<L: Limits> ParseFromParameter for Bounded<L> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        match L::MAX_LENGTH {
            Some(max) if value.chars().count() > max => Err(ParseError::custom(format!("longer than {max}"))),
            _ => Ok(Self(value.to_owned(), PhantomData)),
        }
    }
}

impl<L: Limits> ToJSON for Bounded<L> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}
