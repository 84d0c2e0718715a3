//! Login names: what an account is found by.

use super::User;

/// A login name as the store indexes it: each is unique across all users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginName<'a> {
    Email(&'a str),
    Phone(&'a str),
    Username(&'a str),
}

impl LoginName<'_> {
    /// The one index-key scheme: `e:<email>`, `p:<e164>`, `u:<username>`.
    pub fn key(&self) -> String {
        match self {
            LoginName::Email(v) => format!("e:{v}"),
            LoginName::Phone(v) => format!("p:{v}"),
            LoginName::Username(v) => format!("u:{v}"),
        }
    }

    /// The field a duplicate is reported on.
    pub fn field(&self) -> &'static str {
        match self {
            LoginName::Email(_) => "email",
            LoginName::Phone(_) => "phone",
            LoginName::Username(_) => "username",
        }
    }
}

/// Every login name a user holds.
pub fn login_names(u: &User) -> Vec<LoginName<'_>> {
    let mut names = Vec::new();
    if let Some(e) = &u.email {
        names.push(LoginName::Email(e));
    }
    if let Some(p) = &u.phone {
        names.push(LoginName::Phone(p));
    }
    if let Some(n) = &u.username {
        names.push(LoginName::Username(n));
    }
    names
}
