//! Who may hand out or touch what. A caller may grant, create or change only what lies within its
//! own permissions: assign a role only if it holds every permission of that role, change (or
//! disable, re-enable, delete, rotate) a principal only if it holds every permission that
//! principal has, and edit a role only within its own permissions. The operator on the host
//! (the CLI, directly or through the admin socket) is all-powerful.

use std::{collections::HashMap, sync::Arc};

use super::{core::Core, tokens::AuthContext};
use crate::{
    error::{Error, Result},
    model::{Role, now, permission_matches},
};

/// Who asks for an administrative operation.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator on the host.
    Operator,
    /// A caller authenticated by an access token: it holds what its roles grant.
    Token(Box<AuthContext>),
}

/// A principal's powers, computed once per operation and checked inside its transaction.
#[derive(Clone)]
pub(super) struct Authority {
    /// `None`: the operator, who holds everything.
    held: Option<Vec<String>>,
    roles: Arc<HashMap<String, Role>>,
}

impl Authority {
    fn covers(&self, wanted: &str) -> bool {
        self.held.as_ref().is_none_or(|held| held.iter().any(|p| permission_matches(p, wanted)))
    }

    fn missing<'a>(&self, wanted: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
        wanted.into_iter().find(|p| !self.covers(p))
    }

    fn role_permissions<'a>(&'a self, roles: &'a [String]) -> impl Iterator<Item = &'a String> {
        roles.iter().filter_map(|r| self.roles.get(r)).flat_map(|r| r.permissions.iter())
    }

    /// May these roles be given to someone?
    pub fn may_assign(&self, roles: &[String]) -> Result<()> {
        for name in roles {
            let perms = self.roles.get(name).map(|r| r.permissions.as_slice()).unwrap_or_default();
            if let Some(p) = self.missing(perms) {
                return Err(Error::RoleNotGrantable { role: name.clone(), permission: p.clone() });
            }
        }
        Ok(())
    }

    /// May a principal holding `roles` be changed?
    pub fn may_change(&self, roles: &[String]) -> Result<()> {
        match self.missing(self.role_permissions(roles)) {
            Some(p) => Err(Error::TargetExceedsCaller(p.clone())),
            None => Ok(()),
        }
    }

    /// May these permissions be put into (or taken out of) a role?
    pub fn may_grant(&self, permissions: &[String]) -> Result<()> {
        match self.missing(permissions) {
            Some(p) => Err(Error::PermissionNotHeld(p.clone())),
            None => Ok(()),
        }
    }
}

impl Core {
    /// Refuses a change that needs a recent sign-in (`security.step_up_window`).
    pub(super) fn require_recent_auth(&self, ctx: &AuthContext) -> Result<()> {
        let at = ctx.claims.auth_time.unwrap_or(ctx.claims.iat);
        if at + self.cfg.security.step_up_window.as_secs() < now() {
            return Err(Error::StepUpRequired);
        }
        Ok(())
    }

    /// Checks that `who` holds `permission`, and returns its powers for the rest of the checks.
    pub(super) fn authority(&self, who: &Principal, permission: &str) -> Result<Authority> {
        self.authority_any(who, &[permission])
    }

    /// As [`Self::authority`], for an operation that any one of `permissions` allows.
    pub(super) fn authority_any(&self, who: &Principal, permissions: &[&str]) -> Result<Authority> {
        let roles = self.roles_snapshot();
        let held = match who {
            Principal::Operator => None,
            Principal::Token(ctx) => {
                if !permissions.iter().any(|p| self.has_permission(ctx.roles(), p)) {
                    return Err(Error::Forbidden(permissions.join("` or `")));
                }
                Some(crate::model::granted_permissions(roles.values(), ctx.roles()))
            }
        };
        Ok(Authority { held, roles })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(held: &[&str]) -> Authority {
        let roles: HashMap<String, Role> = crate::model::BUILTIN_ROLES
            .iter()
            .map(|(n, p)| {
                let r = Role {
                    name: (*n).into(),
                    permissions: p.iter().map(|s| (*s).into()).collect(),
                    builtin: true,
                    require_mfa: false,
                };
                (r.name.clone(), r)
            })
            .collect();
        Authority { held: Some(held.iter().map(|s| (*s).into()).collect()), roles: Arc::new(roles) }
    }

    #[test]
    fn nobody_hands_out_more_than_they_hold() {
        let a = authority(&["users:*", "sessions:revoke", "audit:read"]);
        assert!(a.may_assign(&["user".into()]).is_ok());
        assert!(a.may_assign(&["moderator".into()]).is_ok());
        assert!(matches!(a.may_assign(&["admin".into()]), Err(Error::RoleNotGrantable { .. })));
        assert!(a.may_change(&["moderator".into()]).is_ok());
        assert!(matches!(a.may_change(&["admin".into()]), Err(Error::TargetExceedsCaller(p)) if p == "*"));
        assert!(a.may_grant(&["users:read".into(), "users:*".into()]).is_ok());
        assert!(matches!(a.may_grant(&["billing:refund".into()]), Err(Error::PermissionNotHeld(_))));
        assert!(matches!(a.may_grant(&["*".into()]), Err(Error::PermissionNotHeld(_))));
        let operator = Authority { held: None, roles: a.roles.clone() };
        assert!(operator.may_assign(&["admin".into()]).is_ok() && operator.may_grant(&["*".into()]).is_ok());
    }
}
