//! The admin console's rules: who may enter, what each viewer may see and do, and which actions
//! want a fresh sign-in. The operations themselves are the other areas', which check the same
//! permissions again, so a page that shows too much still cannot do too much.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use uuid::Uuid;

use super::{authority::Principal, core::Core, provider::Provider, tokens::AuthContext};
use crate::{
    error::{Error, Result},
    model::{User, granted_permissions, now_millis, permission_matches},
};

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

/// The console area.
pub struct Console {
    core: Arc<Core>,
    provider: Arc<Provider>,
    /// Live tails open on this node, per console session.
    tails: Arc<Tails>,
}

/// Live tails one console session may hold open at once: each reads the log every second.
pub const MAX_TAILS_PER_SESSION: usize = 4;

/// Per console session, its open tails oldest first: a number and the flag that ends it.
type Tails = Mutex<HashMap<Uuid, VecDeque<(u64, Arc<AtomicBool>)>>>;

/// An open live tail; closing it (dropping this) frees its place.
pub struct TailSlot {
    tails: Arc<Tails>,
    session: Uuid,
    id: u64,
    ended: Arc<AtomicBool>,
}

impl TailSlot {
    /// A newer tail of the same session took this one's place: the stream should end.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut tails = self.tails.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = tails.get_mut(&self.session) {
            open.retain(|(id, _)| *id != self.id);
            if open.is_empty() {
                tails.remove(&self.session);
            }
        }
    }
}

impl Console {
    pub(super) fn new(core: Arc<Core>, provider: Arc<Provider>) -> Self {
        Self { core, provider, tails: Arc::default() }
    }

    /// A live tail of the audit log in `viewer`'s session. A session holds at most
    /// [`MAX_TAILS_PER_SESSION`] (so that it, or whoever stole it, cannot make the node read the
    /// log a thousand times a second); a newer one ends the oldest, so that a reload, whose
    /// old connection the node may not have seen close yet, is never refused.
    pub fn open_tail(&self, viewer: &Viewer) -> Result<TailSlot> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if !viewer.may("audit:read") {
            return Err(Error::Forbidden("audit:read".into()));
        }
        let session = viewer.ctx.session_id;
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let ended = Arc::new(AtomicBool::new(false));
        let mut tails = self.tails.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = tails.entry(session).or_default();
        while open.len() >= MAX_TAILS_PER_SESSION {
            if let Some((_, oldest)) = open.pop_front() {
                oldest.store(true, Ordering::Release);
            }
        }
        open.push_back((id, Arc::clone(&ended)));
        Ok(TailSlot { tails: Arc::clone(&self.tails), session, id, ended })
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

    /// From the per-minute counts the store keeps as events are written: at most 1,440 rows
    /// per kind, whatever the traffic.
    async fn activity(&self, by: &Principal) -> Result<Activity> {
        const MINUTE_MS: u64 = 60_000;
        const HOUR_MS: u64 = 3_600_000;
        self.core.authority(by, "audit:read")?;
        let now = now_millis();
        // 24 whole hours, the last one still running.
        let start = (now / HOUR_MS + 1 - 24) * HOUR_MS;
        // The last hour and day end with the running minute.
        let next_minute = now - now % MINUTE_MS + MINUTE_MS;
        let (hour_ago, day_ago) = (next_minute - HOUR_MS, next_minute - 24 * HOUR_MS);
        let from = start.min(day_ago);
        let (logins, failures) = self
            .core
            .db(move |s| {
                s.read(|tx| {
                    Ok::<_, Error>((
                        tx.audit_counts("user.logged_in", from)?,
                        tx.audit_counts("user.login_failed", from)?,
                    ))
                })
            })
            .await?;
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let mut hourly: Vec<(u64, u32, u32)> = (0..24).map(|h| ((start + h * HOUR_MS) / 1000, 0, 0)).collect();
        let slot = |t: u64| usize::try_from((t - start) / HOUR_MS).unwrap_or(0).min(23);
        for (t, n) in logins.iter().filter(|(t, _)| *t >= start) {
            hourly[slot(*t)].1 = hourly[slot(*t)].1.saturating_add(narrow(*n));
        }
        for (t, n) in failures.iter().filter(|(t, _)| *t >= start) {
            hourly[slot(*t)].2 = hourly[slot(*t)].2.saturating_add(narrow(*n));
        }
        let since =
            |counts: &[(u64, u64)], from: u64| narrow(counts.iter().filter(|(t, _)| *t >= from).map(|(_, n)| n).sum());
        Ok(Activity {
            logins_hour: since(&logins, hour_ago),
            failures_hour: since(&failures, hour_ago),
            logins_day: since(&logins, day_ago),
            failures_day: since(&failures, day_ago),
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
