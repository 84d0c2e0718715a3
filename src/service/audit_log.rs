//! Reading the audit log.

use std::sync::Arc;

use uuid::Uuid;

use super::{audit::AuditFilter, authority::Principal, core::Core};
use crate::{
    error::{Error, Result},
    model::{AuditEvent, now_millis},
};

/// Where a read of the log starts.
#[derive(Clone, Copy)]
enum Cursor {
    /// The newest events, newest first.
    Newest,
    /// Older than this event, newest first.
    Before(Uuid),
    /// Newer than this event, oldest first.
    After(Uuid),
}

/// The audit log as read: by administrators, by a user about their own account, and pruned.
pub struct AuditLog {
    core: Arc<Core>,
}

impl AuditLog {
    pub(super) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Newest first, at most `limit`, older than `before` when given (needs `audit:read`).
    pub async fn events(
        &self,
        by: &Principal,
        filter: AuditFilter,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>> {
        self.core.authority(by, "audit:read")?;
        self.query(filter, before.map_or(Cursor::Newest, Cursor::Before), limit).await
    }

    /// Events newer than the event `after` and at least two seconds old, oldest first, at most
    /// `limit` of them: the console's live tail, which asks again from the last one it got, so
    /// a burst comes whole, a page at a time. Needs `audit:read`.
    pub async fn newer(&self, by: &Principal, after: Uuid, limit: usize) -> Result<Vec<AuditEvent>> {
        self.core.authority(by, "audit:read")?;
        // Only what has settled: an event's id is made before its commit, and one queued for a
        // batch (failed sign-ins), or committed by a slower transaction or another node, can
        // land behind a cursor that moved on. Two seconds covers them; the tail lags by that.
        let filter = AuditFilter { until_ms: Some(now_millis().saturating_sub(2_000)), ..AuditFilter::default() };
        self.query(filter, Cursor::After(after), limit).await
    }

    async fn query(&self, filter: AuditFilter, at: Cursor, limit: usize) -> Result<Vec<AuditEvent>> {
        let (before, after) = match at {
            Cursor::Newest => (None, None),
            Cursor::Before(id) => (Some(id), None),
            Cursor::After(id) => (None, Some(id)),
        };
        self.core
            .db(move |s| {
                let q = crate::store::AuditQuery {
                    subject: filter.user,
                    event: filter.event.as_deref(),
                    since_ms: filter.since_ms,
                    until_ms: filter.until_ms,
                    before,
                    after,
                };
                s.read(|tx| tx.audit_events(&q, limit, &|e| filter.keeps(e)).map_err(Error::from))
            })
            .await
    }

    /// A user's own recent events, newest first. What an administrator did to the account shows
    /// as done by "an administrator", without the administrator's id or address.
    pub async fn mine(&self, user: Uuid, limit: usize) -> Result<Vec<AuditEvent>> {
        let filter = AuditFilter { user: Some(user), ..Default::default() };
        let own = format!("user:{user}");
        let mut events = self.query(filter, Cursor::Newest, limit).await?;
        for e in &mut events {
            if e.actor != own && e.actor != "anonymous" && e.actor != "system" {
                e.actor = "an administrator".into();
                e.ip = None;
                e.user_agent = None;
            }
        }
        Ok(events)
    }

    /// Drops events older than `audit.retention`.
    pub async fn prune(&self) -> Result<usize> {
        let before =
            now_millis().saturating_sub(u64::try_from(self.core.cfg.audit.retention.0.as_millis()).unwrap_or(u64::MAX));
        self.core.db(move |s| s.write(|tx| tx.prune_audit(before).map_err(Error::from))).await
    }
}
