//! Parse, don't validate: login names as newtypes that only exist in normalised form.

use unicode_normalization::UnicodeNormalization as _;

use crate::error::FieldError;

/// A strictly valid address, NFKC-normalised and lower-cased so that look-alike spellings
/// (`Alice@Example.com`, a KELVIN SIGN for `k`) land on one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |m: &str| FieldError::new("email", "invalid_email", m);
        let s: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        if s.is_empty() {
            return Err(bad("email must not be empty"));
        }
        if s.len() > 254 {
            return Err(bad("email must be at most 254 characters"));
        }
        let opts =
            email_address::Options::default().with_required_tld().without_display_text().without_domain_literal();
        email_address::EmailAddress::parse_with_options(&s, opts)
            .map_err(|e| bad(&format!("`{raw}` is not a valid email address ({e})")))?;
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A valid phone number in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |m: String| FieldError::new("phone", "invalid_phone", m);
        let s = raw.trim();
        if !s.starts_with('+') || s.len() > 32 {
            return Err(bad(format!("`{raw}` must be an international number starting with + (E.164)")));
        }
        let n = phonenumber::parse(None, s).map_err(|e| bad(format!("`{raw}` is not a phone number ({e})")))?;
        if !phonenumber::is_valid(&n) {
            return Err(bad(format!("`{raw}` is not a valid phone number")));
        }
        Ok(Self(n.format().mode(phonenumber::Mode::E164).to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// 3–32 characters of `a-z 0-9 . _ -`, starting with a letter or digit, stored lower-case.
/// ASCII only, so no confusable or invisible characters can make two names look alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |m: &str| FieldError::new("username", "invalid_username", m);
        let s = raw.trim().to_ascii_lowercase();
        let len = s.chars().count();
        if !(3..=32).contains(&len) {
            return Err(bad("username must be 3 to 32 characters"));
        }
        if !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')) {
            return Err(bad("username may contain only letters a-z, digits, '.', '_' and '-'"));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad("username must start with a letter or a digit"));
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// What someone typed to sign in: told apart by shape (`@` → email, leading `+` → phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Email(Email),
    Phone(Phone),
    Username(Username),
}

impl Login {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim();
        if s.contains('@') {
            Email::parse(s).map(Login::Email)
        } else if s.starts_with('+') {
            Phone::parse(s).map(Login::Phone)
        } else {
            Username::parse(s).map(Login::Username)
        }
    }

    /// The store's index key for this login name.
    pub fn index_key(&self) -> String {
        match self {
            Login::Email(e) => crate::store::index_key('e', e.as_str()),
            Login::Phone(p) => crate::store::index_key('p', p.as_str()),
            Login::Username(u) => crate::store::index_key('u', u.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_strict_and_normalised() {
        assert_eq!(Email::parse(" Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
        assert_eq!(Email::parse("quac\u{212A}@example.com").unwrap().as_str(), "quack@example.com");
        for bad in ["", "alice", "a@b", "Alice <a@example.com>", "a@[127.0.0.1]", "a@localhost", "@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(Phone::parse("+1 415-555-2671").unwrap().as_str(), "+14155552671");
        assert_eq!(Phone::parse("+44 20 7946 0958").unwrap().as_str(), "+442079460958");
        for bad in ["4155552671", "+12345", "+", "phone", "+1 415 555 2671 9999 9999 9999 9999 9999"] {
            assert!(Phone::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn usernames_are_a_safe_ascii_set() {
        assert_eq!(Username::parse("Alice_99").unwrap().as_str(), "alice_99");
        for bad in ["ab", &"a".repeat(33), "_alice", "al ice", "аdmin", "ad\u{200B}min", "al@ice", "al\u{202E}ice"] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn logins_are_told_apart_by_shape() {
        assert!(matches!(Login::parse("a@example.com"), Ok(Login::Email(_))));
        assert!(matches!(Login::parse("+14155552671"), Ok(Login::Phone(_))));
        assert!(matches!(Login::parse("alice"), Ok(Login::Username(_))));
    }
}
