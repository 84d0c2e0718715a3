//! The admin console's rules: who may enter, what each viewer may see and do, and which actions
//! want a fresh sign-in. The operations themselves are the other areas', which check the same
//! permissions again, so a page that shows too much still cannot do too much.

use std::sync::Arc;

use super::{authority::Principal, core::Core, provider::Provider, tokens::AuthContext};
use crate::{
    error::{Error, Result},
    model::{User, granted_permissions, permission_matches},
};

/// Any one of these opens the console; each page needs its own.
pub const CONSOLE_PERMISSIONS: [&str; 6] =
    ["users:read", "roles:read", "clients:read", "webhooks:read", "audit:read", "keys:read"];

/// A signed-in user in the console.
pub struct Viewer {
    pub ctx: AuthContext,
    pub user: User,
    permissions: Vec<String>,
}

impl Viewer {
    /// The principal the services judge: the same as an access token of this user would be.
    pub fn principal(&self) -> Principal {
        Principal::Token(Box::new(self.ctx.clone()))
    }

    /// Whether the viewer holds `permission`; the pages show only what this allows.
    pub fn may(&self, permission: &str) -> bool {
        self.permissions.iter().any(|g| permission_matches(g, permission))
    }
}

/// The console area.
#[derive(Clone)]
pub struct Console {
    core: Arc<Core>,
    provider: Arc<Provider>,
}

impl Console {
    pub(super) fn new(core: Arc<Core>, provider: Arc<Provider>) -> Self {
        Self { core, provider }
    }

    pub fn enabled(&self) -> bool {
        self.core.cfg.admin.console
    }

    /// The viewer of a hosted-login session cookie: `None` when not signed in; refused when
    /// the console is off or the user holds no admin permission.
    pub async fn viewer(&self, cookie: Option<&str>) -> Result<Option<Viewer>> {
        if !self.enabled() {
            return Err(Error::NoRoute);
        }
        let Some((ctx, user)) = self.provider.account_context(cookie).await? else { return Ok(None) };
        let roles = self.core.roles_snapshot();
        let permissions = granted_permissions(roles.values(), &user.roles);
        let viewer = Viewer { ctx, user, permissions };
        if !CONSOLE_PERMISSIONS.iter().any(|p| viewer.may(p)) {
            return Err(Error::Forbidden(CONSOLE_PERMISSIONS.join("` or `")));
        }
        Ok(Some(viewer))
    }

    /// Destructive actions (disable, delete, second-factor reset, key rotation, secret
    /// rotation) want one of `any_of` and then a sign-in within `security.step_up_window`: a
    /// viewer who may not act is told so, not sent to sign in again for nothing.
    pub fn destructive(&self, viewer: &Viewer, any_of: &[&str]) -> Result<()> {
        if !any_of.iter().any(|p| viewer.may(p)) {
            return Err(Error::Forbidden(any_of.join("` or `")));
        }
        self.core.require_recent_auth(&viewer.ctx)
    }
}
