//! Parse, don't validate: login names as newtypes that only exist in normalised form.

use unicode_normalization::UnicodeNormalization as _;

use crate::error::FieldError;

/// A strictly valid address, normalised so that look-alike spellings land on one account: the
/// local part NFKC and lower-cased (`Alice`, a KELVIN SIGN for `k`), the domain in its IDNA ASCII
/// form (`bücher.example` and `xn--bcher-kva.example` are one domain). A local part that mixes
/// scripts (a Cyrillic `а` among Latin letters) is refused, as in usernames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The longest address (RFC 5321 §4.5.3.1.3), and so the longest login name.
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |m: &str| FieldError::new("email", "invalid_email", m);
        let s: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        if s.is_empty() {
            return Err(bad("email must not be empty"));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(bad(&format!("`{raw}` is not a valid email address (no @)")));
        };
        if mixes_scripts(local) {
            return Err(FieldError::new(
                "email",
                "mixed_script",
                "the part before @ mixes alphabets (e.g. a Cyrillic letter among Latin ones); type it in one",
            ));
        }
        let domain = idna::domain_to_ascii(domain)
            .map_err(|_| bad(&format!("`{raw}` has a domain that is not a valid internationalised name")))?;
        let s = format!("{local}@{domain}");
        if s.len() > Self::MAX_LEN {
            return Err(bad(&format!("email must be at most {} characters", Self::MAX_LEN)));
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

/// Do the letters of `s` come from more than one script? Digits and punctuation belong to none.
fn mixes_scripts(s: &str) -> bool {
    let mut seen = None;
    for c in s.chars().filter(|c| c.is_alphabetic()) {
        let script = match u32::from(c) {
            0x0000..=0x024F | 0x1E00..=0x1EFF => 0,
            0x0370..=0x03FF | 0x1F00..=0x1FFF => 1,
            0x0400..=0x052F => 2,
            0x0530..=0x058F => 3,
            0x0590..=0x05FF => 4,
            0x0600..=0x06FF => 5,
            0x3040..=0x30FF => 6,
            0x4E00..=0x9FFF => 7,
            0xAC00..=0xD7AF => 8,
            other => other >> 8,
        };
        match seen {
            None => seen = Some(script),
            Some(s) if s != script => return true,
            Some(_) => {}
        }
    }
    false
}

/// A valid phone number in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Longer than any E.164 number with room for spacing.
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |m: String| FieldError::new("phone", "invalid_phone", m);
        let s = raw.trim();
        if !s.starts_with('+') || s.len() > Self::MAX_LEN {
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
    /// What [`Username::parse`] accepts, as a pattern for the API document (before it
    /// lower-cases).
    pub const PATTERN: &'static str = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$";

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

/// Which kind of login name a string is meant as, by its shape alone: `@` → email, leading `+`
/// → phone, else a username. The one place that rule is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    Email,
    Phone,
    Username,
}

impl LoginKind {
    pub fn of(raw: &str) -> Self {
        let s = raw.trim();
        if s.contains('@') {
            LoginKind::Email
        } else if s.starts_with('+') {
            LoginKind::Phone
        } else {
            LoginKind::Username
        }
    }
}

/// What someone typed to sign in, told apart by [`LoginKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Email(Email),
    Phone(Phone),
    Username(Username),
}

impl Login {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim();
        match LoginKind::of(s) {
            LoginKind::Email => Email::parse(s).map(Login::Email),
            LoginKind::Phone => Phone::parse(s).map(Login::Phone),
            LoginKind::Username => Username::parse(s).map(Login::Username),
        }
    }

    /// This login name as the store looks it up.
    pub fn name(&self) -> crate::model::LoginName<'_> {
        match self {
            Login::Email(e) => crate::model::LoginName::Email(e.as_str()),
            Login::Phone(p) => crate::model::LoginName::Phone(p.as_str()),
            Login::Username(u) => crate::model::LoginName::Username(u.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_username_pattern_agrees_with_the_parser() {
        let pattern = regex::Regex::new(Username::PATTERN).unwrap();
        for s in [
            "abc",
            "Alice",
            "a.b_c-d",
            "0day",
            &"x".repeat(32),
            "ab",
            &"x".repeat(33),
            ".abc",
            "-abc",
            "a b",
            "ä12",
            "a@b",
        ] {
            assert_eq!(pattern.is_match(s), Username::parse(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn emails_are_strict_and_normalised() {
        assert_eq!(Email::parse(" Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
        assert_eq!(Email::parse("quac\u{212A}@example.com").unwrap().as_str(), "quack@example.com");
        for bad in ["", "alice", "a@b", "Alice <a@example.com>", "a@[127.0.0.1]", "a@localhost", "@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
        // The domain takes its IDNA ASCII form, whichever way it was typed.
        assert_eq!(Email::parse("anna@Bücher.example").unwrap().as_str(), "anna@xn--bcher-kva.example");
        assert_eq!(Email::parse("anna@xn--bcher-kva.example").unwrap().as_str(), "anna@xn--bcher-kva.example");
        // One script per local part: a Cyrillic а in "admin" is refused; all-Cyrillic is fine.
        let e = Email::parse("\u{0430}dmin@example.com").unwrap_err();
        assert_eq!(e.code, "mixed_script");
        assert!(Email::parse("\u{0430}\u{0434}\u{043C}\u{0438}\u{043D}@example.com").is_ok());
        assert!(Email::parse("jos\u{00E9}.1990@example.com").is_ok());
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
