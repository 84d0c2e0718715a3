//! Roles and permissions: built-in and custom roles, the last-admin guard, policy checks.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    authority::Principal,
    core::Core,
    db::Tx,
    tokens::{AuthContext, Tokens},
};
use crate::{
    error::{Error, FieldError, Result},
    model::{Role, User, UserStatus},
};

pub const ADMIN: &str = "admin";

/// `segment:segment`, `segment:*` or `*`, segments of `a-z 0-9 _ . -`.
fn is_valid_permission(p: &str) -> bool {
    let seg = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
    };
    match p.split_once(':') {
        _ if p == "*" => true,
        Some((a, "*")) => seg(a),
        Some((a, b)) => seg(a) && seg(b),
        None => false,
    }
}

fn is_valid_role_name(n: &str) -> bool {
    (2..=32).contains(&n.len()) && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
}

fn check_permissions(perms: &[String]) -> Result<()> {
    let bad: Vec<FieldError> = perms
        .iter()
        .filter(|p| !is_valid_permission(p))
        .map(|p| {
            FieldError::new(
                "permissions",
                "invalid_permission",
                format!("`{p}` is not a permission like `users:read`, `users:*` or `*`"),
            )
        })
        .collect();
    if bad.is_empty() { Ok(()) } else { Err(Error::Invalid(bad)) }
}

fn is_active_admin(u: &User) -> bool {
    u.status == UserStatus::Active && u.roles.iter().any(|r| r == ADMIN)
}

/// Every user who holds `role`, through the index.
fn holders_of(tx: &Tx<'_>, role: &str) -> Result<Vec<User>> {
    Ok(tx.users_page(&crate::store::UserQuery { role: Some(role), ..Default::default() }, usize::MAX)?)
}

/// Refuses a change that would leave no active admin. `after` is `None` for a deletion.
pub(super) fn guard_last_admin(tx: &Tx<'_>, before: &User, after: Option<&User>) -> Result<()> {
    if !is_active_admin(before) || after.is_some_and(is_active_admin) {
        return Ok(());
    }
    let admins = crate::store::UserQuery { role: Some(ADMIN), status: Some(UserStatus::Active), ..Default::default() };
    let others = tx.users_page(&admins, 2)?.iter().filter(|u| u.id != before.id).count();
    if others == 0 { Err(Error::LastAdmin) } else { Ok(()) }
}

/// Why a permission check came out as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The roles: their administration, and what they grant.
pub struct Roles {
    core: Arc<Core>,
    tokens: Tokens,
}

impl Roles {
    pub(super) fn new(core: Arc<Core>, tokens: Tokens) -> Self {
        Self { core, tokens }
    }

    /// Needs `roles:read`.
    pub async fn list(&self, by: &Principal) -> Result<Vec<Role>> {
        self.core.authority(by, "roles:read")?;
        let mut roles: Vec<Role> = self.core.roles_snapshot().values().cloned().collect();
        roles.sort_by(|a, b| b.builtin.cmp(&a.builtin).then(a.name.cmp(&b.name)));
        Ok(roles)
    }

    pub async fn get(&self, name: &str) -> Result<Role> {
        self.core.roles_snapshot().get(name).cloned().ok_or(Error::NotFound("role"))
    }

    /// Needs `roles:write` and every permission the role grants.
    pub async fn create(&self, by: &Principal, name: &str, permissions: Vec<String>) -> Result<Role> {
        let authority = self.core.authority(by, "roles:write")?;
        if !is_valid_role_name(name) {
            return Err(Error::invalid(
                "name",
                "invalid_role_name",
                "role names are 2-32 characters of a-z, 0-9, '_' and '-'",
            ));
        }
        check_permissions(&permissions)?;
        authority.may_grant(&permissions)?;
        let mut role = Role { name: name.to_owned(), permissions, builtin: false, require_mfa: false };
        role.permissions.sort();
        role.permissions.dedup();
        let r = role.clone();
        self.core
            .db(move |s| {
                s.write(|tx| {
                    if tx.roles()?.iter().any(|x| x.name == r.name) {
                        return Err(Error::Conflict("role name"));
                    }
                    tx.put_role(&r)?;
                    tx.audit(
                        "role.created",
                        None,
                        None,
                        serde_json::json!({"role": r.name, "permissions": r.permissions}),
                    )?;
                    Ok(())
                })
            })
            .await?;
        self.core.reload_roles().await?;
        tracing::info!(role = %role.name, "role created");
        Ok(role)
    }

    /// Adds and removes permissions of a role. `admin` always keeps `*`. Needs `roles:write`,
    /// and the caller must hold every permission the role grants, before and after.
    pub async fn change(&self, by: &Principal, name: &str, grant: Vec<String>, revoke: Vec<String>) -> Result<Role> {
        let authority = self.core.authority(by, "roles:write")?;
        check_permissions(&grant)?;
        authority.may_grant(&grant)?;
        let name = name.to_owned();
        let role = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let mut role = tx.roles()?.into_iter().find(|r| r.name == name).ok_or(Error::NotFound("role"))?;
                    let before = role.permissions.clone();
                    authority.may_grant(&before)?;
                    role.permissions.retain(|p| !revoke.contains(p));
                    role.permissions.extend(grant);
                    role.permissions.sort();
                    role.permissions.dedup();
                    if role.name == ADMIN && !role.permissions.iter().any(|p| p == "*") {
                        return Err(Error::BuiltinRole("the admin role always keeps `*`".into()));
                    }
                    tx.put_role(&role)?;
                    // Tokens of every holder carry what the role granted when they were minted.
                    if role.permissions != before {
                        for mut u in holders_of(tx, &role.name)? {
                            tx.bump_authz(u.id, &mut u.authz_gen)?;
                            tx.update_user(&u)?;
                        }
                        for mut c in tx.clients()?.into_iter().filter(|c| c.roles.contains(&role.name)) {
                            tx.bump_authz(c.id, &mut c.authz_gen)?;
                            tx.put_client(&c)?;
                        }
                    }
                    let details = serde_json::json!({"role": role.name, "permissions": role.permissions});
                    tx.audit("role.changed", None, None, details)?;
                    Ok(role)
                })
            })
            .await?;
        self.core.reload_roles().await?;
        tracing::info!(role = %role.name, permissions = ?role.permissions, "role changed");
        Ok(role)
    }

    /// Whether members of a role must have a second factor. Needs `roles:write` and every
    /// permission the role grants. Members without a factor may only enrol at their next login.
    pub async fn set_mfa(&self, by: &Principal, name: &str, required: bool) -> Result<Role> {
        let authority = self.core.authority(by, "roles:write")?;
        let name = name.to_owned();
        let role = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let mut role = tx.roles()?.into_iter().find(|r| r.name == name).ok_or(Error::NotFound("role"))?;
                    authority.may_grant(&role.permissions)?;
                    role.require_mfa = required;
                    tx.put_role(&role)?;
                    let details = serde_json::json!({"role": role.name, "require_mfa": required});
                    tx.audit("role.changed", None, None, details)?;
                    Ok(role)
                })
            })
            .await?;
        self.core.reload_roles().await?;
        tracing::info!(role = %role.name, require_mfa = required, "role second-factor rule changed");
        Ok(role)
    }

    /// Deletes a custom role. While users hold it, only with `force`, which takes it from them
    /// (their tokens are refused until refreshed).
    pub async fn delete(&self, by: &Principal, name: &str, force: bool) -> Result<Role> {
        let authority = self.core.authority(by, "roles:write")?;
        let name = name.to_owned();
        let role = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let role = tx.roles()?.into_iter().find(|r| r.name == name).ok_or(Error::NotFound("role"))?;
                    if role.builtin {
                        return Err(Error::BuiltinRole(format!("`{}` is built in and cannot be deleted", role.name)));
                    }
                    authority.may_grant(&role.permissions)?;
                    let holders = holders_of(tx, &role.name)?;
                    if !holders.is_empty() && !force {
                        return Err(Error::RoleInUse(role.name.clone(), holders.len()));
                    }
                    for mut u in holders {
                        u.roles.retain(|r| *r != role.name);
                        if u.roles.is_empty() {
                            u.roles.push("user".into());
                        }
                        u.updated_at = tx.now();
                        tx.bump_authz(u.id, &mut u.authz_gen)?;
                        tx.update_user(&u)?;
                    }
                    tx.delete_role(&role.name)?;
                    tx.audit("role.deleted", None, None, serde_json::json!({"role": role.name, "force": force}))?;
                    Ok(role)
                })
            })
            .await?;
        self.core.reload_roles().await?;
        tracing::info!(role = %role.name, "role deleted");
        Ok(role)
    }

    /// Answers an application's policy question about a token (its own or one it holds).
    pub async fn authz_check(
        &self,
        caller: &AuthContext,
        token: Option<&str>,
        permission: &str,
        owner: Option<Uuid>,
    ) -> Result<Decision> {
        if !is_valid_permission(permission) || permission.contains('*') {
            return Err(Error::invalid(
                "permission",
                "invalid_permission",
                "ask about one permission like `billing:refund`",
            ));
        }
        match token {
            None => Ok(self.check_permission(caller, permission, owner)),
            Some(t) => {
                self.tokens.require_permission(caller, "tokens:introspect")?;
                match self.tokens.authenticate(t) {
                    // An application's token serves that application's scopes; it grants
                    // nothing of its user's authority here.
                    Ok(subject) if subject.claims.azp.is_some() => Ok(Decision {
                        allowed: false,
                        reason: "the token was issued to an application, not to the user's own sign-in".into(),
                    }),
                    Ok(subject) => Ok(self.check_permission(&subject, permission, owner)),
                    Err(e) => Ok(Decision { allowed: false, reason: format!("the token is not valid: {e}") }),
                }
            }
        }
    }

    /// The permissions the given roles grant, wildcards as written.
    pub fn permissions_of(&self, roles: &[String]) -> Vec<String> {
        let known = self.core.roles_snapshot();
        crate::model::granted_permissions(known.values(), roles)
    }

    /// May `subject` do `permission` (on a resource owned by `owner`)?
    pub fn check_permission(&self, subject: &AuthContext, permission: &str, owner: Option<Uuid>) -> Decision {
        let known = self.core.roles_snapshot();
        if let Some(role) = subject.roles().iter().filter_map(|r| known.get(r)).find(|r| r.grants(permission)) {
            return Decision { allowed: true, reason: format!("granted by role `{}`", role.name) };
        }
        if owner == Some(subject.user_id) {
            return Decision { allowed: true, reason: "the caller owns the resource".into() };
        }
        Decision { allowed: false, reason: format!("no role of the caller grants `{permission}`") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_and_role_names_are_checked() {
        for ok in ["users:read", "users:*", "*", "billing:refund", "a.b:c-d"] {
            assert!(is_valid_permission(ok), "{ok}");
        }
        for bad in ["", "users", "users:", ":read", "Users:read", "users:read:x", "*:read", "users: read"] {
            assert!(!is_valid_permission(bad), "{bad}");
        }
        assert!(is_valid_role_name("support-2") && !is_valid_role_name("A") && !is_valid_role_name("has space"));
    }
}
