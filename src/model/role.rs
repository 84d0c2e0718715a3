use serde::{Deserialize, Serialize};

/// A named set of permissions such as `users:read`; `users:*` and `*` are wildcards.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub builtin: bool,
    /// Members must have a second factor: without one, login only lets them enrol it.
    #[serde(default)]
    pub require_mfa: bool,
}

impl Role {
    pub fn grants(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| permission_matches(p, permission))
    }
}

/// Does `granted` (possibly a wildcard) include `wanted` (possibly a wildcard too)?
pub fn permission_matches(granted: &str, wanted: &str) -> bool {
    if granted == "*" || granted == wanted {
        return true;
    }
    match granted.strip_suffix(":*") {
        Some(prefix) => wanted.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(':')),
        None => false,
    }
}

/// Present from the first start.
pub const BUILTIN_ROLES: &[(&str, &[&str])] = &[
    ("admin", &["*"]),
    ("moderator", &["users:read", "users:disable", "sessions:revoke", "audit:read"]),
    ("user", &[]),
];

/// The permissions that the `held` roles grant among `roles`, sorted, wildcards as written.
pub fn granted_permissions<'a>(roles: impl IntoIterator<Item = &'a Role>, held: &[String]) -> Vec<String> {
    let mut perms: Vec<String> =
        roles.into_iter().filter(|r| held.contains(&r.name)).flat_map(|r| r.permissions.iter().cloned()).collect();
    perms.sort();
    perms.dedup();
    perms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_by_segment() {
        let cases = [
            ("*", "tokens:introspect", true),
            ("users:*", "users:read", true),
            ("users:*", "usersx:read", false),
            ("users:read", "users:read", true),
            ("users:read", "users:write", false),
        ];
        for (granted, wanted, expect) in cases {
            assert_eq!(permission_matches(granted, wanted), expect, "{granted} vs {wanted}");
        }
    }
}
