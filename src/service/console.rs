//! The admin console's rules: who may enter, what each viewer may see and do, and which actions
//! want a fresh sign-in. The operations themselves are the other areas', which check the same
//! permissions again, so a page that shows too much still cannot do too much.

use std::sync::Arc;

use super::{authority::Principal, core::Core, provider::Provider, tokens::AuthContext};
use crate::{
    error::{Error, Result},
    model::{User, granted_permissions, now_millis, permission_matches},
};

/// Events counted for the overview, per kind; past this many the counts say "at least".
const ACTIVITY_CAP: usize = 10_000;

/// The overview, as far as the viewer may see it.
pub struct Overview {
    /// With `users:read`.
    pub users: Option<u64>,
    /// Sessions open (signed in, not yet expired or ended), with `users:read`.
    pub sessions: Option<u64>,
    /// With `audit:read`.
    pub activity: Option<Activity>,
}

/// Sign-ins and failed sign-ins over the last day, from the audit log.
pub struct Activity {
    /// Per hour, oldest first, 24 of them: (start of the hour in seconds, sign-ins, failures).
    pub hourly: Vec<(u64, u32, u32)>,
    pub logins_hour: u32,
    pub failures_hour: u32,
    pub logins_day: u32,
    pub failures_day: u32,
    /// A count reached [`ACTIVITY_CAP`]: the figures are lower bounds.
    pub capped: bool,
}

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

/// When an event was written, from its UUIDv7 id.
fn ms_of(id: &uuid::Uuid) -> u64 {
    id.get_timestamp().map_or(0, |t| {
        let (secs, nanos) = t.to_unix();
        secs * 1000 + u64::from(nanos / 1_000_000)
    })
}

/// The console area.
pub struct Console {
    core: Arc<Core>,
    provider: Arc<Provider>,
}

impl Console {
    pub(super) fn new(core: Arc<Core>, provider: Arc<Provider>) -> Self {
        Self { core, provider }
    }

    /// The counts the overview shows: users, and sign-ins and failures over the last hour and
    /// day with their hourly course.
    pub async fn overview(&self, viewer: &Viewer) -> Result<Overview> {
        let counts = match viewer.may("users:read") {
            true => Some(self.core.db(|s| s.read(|tx| Ok::<_, Error>((tx.user_count()?, tx.session_count()?)))).await?),
            false => None,
        };
        let activity = match viewer.may("audit:read") {
            true => Some(self.activity(&viewer.principal()).await?),
            false => None,
        };
        Ok(Overview { users: counts.map(|c| c.0), sessions: counts.map(|c| c.1), activity })
    }

    /// Counted from the audit log's index by event: ids only (UUIDv7 carry their time), no
    /// event read.
    async fn activity(&self, by: &Principal) -> Result<Activity> {
        const HOUR_MS: u64 = 3_600_000;
        self.core.authority(by, "audit:read")?;
        let now = now_millis();
        // 24 whole hours, the last one still running.
        let start = (now / HOUR_MS + 1 - 24) * HOUR_MS;
        let (logins, failures) = self
            .core
            .db(move |s| {
                s.read(|tx| {
                    let times = |event: &str| -> Result<Vec<u64>> {
                        let ids = tx.audit_ids(event, start, ACTIVITY_CAP)?;
                        Ok(ids.iter().map(ms_of).filter(|t| *t >= start).collect())
                    };
                    Ok::<_, Error>((times("user.logged_in")?, times("user.login_failed")?))
                })
            })
            .await?;
        let mut hourly: Vec<(u64, u32, u32)> = (0..24).map(|h| ((start + h * HOUR_MS) / 1000, 0, 0)).collect();
        let slot = |t: u64| usize::try_from(t.saturating_sub(start) / HOUR_MS).unwrap_or(0).min(23);
        for t in &logins {
            hourly[slot(*t)].1 += 1;
        }
        for t in &failures {
            hourly[slot(*t)].2 += 1;
        }
        let last_hour =
            |times: &[u64]| u32::try_from(times.iter().filter(|t| **t + HOUR_MS > now).count()).unwrap_or(u32::MAX);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Activity {
            logins_hour: last_hour(&logins),
            failures_hour: last_hour(&failures),
            logins_day: count(logins.len()),
            failures_day: count(failures.len()),
            capped: logins.len() >= ACTIVITY_CAP || failures.len() >= ACTIVITY_CAP,
            hourly,
        })
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
