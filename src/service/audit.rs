//! The audit trail. Events that describe a change are written in the same transaction as the
//! change; events without one (failed logins, throttling) go through a bounded background
//! writer that batches them, so a flood of failures cannot turn into a flood of disk commits.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::AuthService;
use crate::{
    error::{Error, Result},
    model::{AuditEvent, now_millis},
};

/// Who is acting and from where, for the current request or admin command.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    pub actor: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

tokio::task_local! {
    /// Set around each HTTP request and admin command; the authenticated caller fills in the
    /// actor.
    pub static AUDIT_CONTEXT: Arc<Mutex<AuditContext>>;
}

/// Runs `fut` with an audit context.
pub async fn with_audit_context<F: std::future::Future>(ctx: AuditContext, fut: F) -> F::Output {
    AUDIT_CONTEXT.scope(Arc::new(Mutex::new(ctx)), fut).await
}

/// Records the authenticated actor of the current request.
pub fn set_actor(actor: String) {
    let _ = AUDIT_CONTEXT.try_with(|c| {
        if let Ok(mut c) = c.lock() {
            c.actor = Some(actor);
        }
    });
}

/// An event of the request `ctx`. Without an authenticated actor, a success is the subject's own
/// doing and a failure an anonymous one's.
pub(super) fn event(
    ctx: &AuditContext,
    event: &str,
    success: bool,
    subject: Option<Uuid>,
    session_id: Option<Uuid>,
    details: serde_json::Value,
) -> AuditEvent {
    let actor = ctx.actor.clone().unwrap_or_else(|| match subject {
        Some(s) if success => format!("user:{s}"),
        _ => "anonymous".into(),
    });
    AuditEvent {
        id: Uuid::now_v7(),
        time_ms: now_millis(),
        event: event.into(),
        outcome: if success { "success" } else { "failure" }.into(),
        actor,
        subject,
        session_id,
        ip: ctx.ip.map(|i| i.to_string()),
        user_agent: ctx.user_agent.clone(),
        details: if details.is_null() { serde_json::json!({}) } else { details },
    }
}

/// The request being served, as far as the audit trail is concerned.
pub(super) fn current() -> AuditContext {
    AUDIT_CONTEXT.try_with(|c| c.lock().map(|c| c.clone()).unwrap_or_default()).unwrap_or_default()
}

/// RFC 3339, or an age such as `1h` or `7d`.
pub fn parse_instant(field: &str, s: &str) -> Result<u64, Error> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0));
    }
    match humantime::parse_duration(s) {
        Ok(d) => Ok(crate::model::now_millis().saturating_sub(d.as_millis() as u64)),
        Err(_) => {
            Err(Error::invalid(field, "invalid_time", format!("`{s}` is neither an RFC 3339 time nor an age like 1h")))
        }
    }
}

/// What the audit query keeps.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user: Option<Uuid>,
    pub event: Option<String>,
    pub outcome: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

impl AuditFilter {
    fn keeps(&self, e: &AuditEvent) -> bool {
        self.user.is_none_or(|u| e.subject == Some(u))
            && self.event.as_deref().is_none_or(|ev| e.event == ev || e.event.starts_with(&format!("{ev}.")))
            && self.outcome.as_deref().is_none_or(|o| e.outcome == o)
            && self.since_ms.is_none_or(|s| e.time_ms >= s)
            && self.until_ms.is_none_or(|u| e.time_ms < u)
    }
}

/// Bounded queue to the batching writer.
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
}

impl AuditSink {
    pub(super) fn start(store: super::Db) -> Self {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(10_000);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = rx.recv().await {
                batch.push(first);
                tokio::time::sleep(Duration::from_millis(100)).await;
                while batch.len() < 1000 {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let events = std::mem::take(&mut batch);
                let store = store.clone();
                let written = tokio::task::spawn_blocking(move || {
                    store.write(|tx| -> Result<()> {
                        for e in &events {
                            tx.append_audit(e)?;
                        }
                        Ok(())
                    })
                })
                .await;
                if !matches!(written, Ok(Ok(()))) {
                    tracing::warn!("could not write a batch of audit events");
                }
            }
        });
        Self { tx }
    }

    fn push(&self, e: AuditEvent) {
        if self.tx.try_send(e).is_err() {
            tracing::warn!("audit queue full; an event was dropped");
        }
    }
}

impl super::Core {
    /// An event in the current context, for [`Self::audit_later`].
    pub(super) fn audit_event(
        &self,
        event: &str,
        success: bool,
        subject: Option<Uuid>,
        session_id: Option<Uuid>,
        details: serde_json::Value,
    ) -> AuditEvent {
        self::event(&current(), event, success, subject, session_id, details)
    }

    /// Records an event that has no transaction of its own.
    pub(super) fn audit_later(&self, e: AuditEvent) {
        self.audit_sink.push(e);
    }
}

impl AuthService {
    /// Newest first, at most `limit`, older than `before` when given (needs `audit:read`).
    pub async fn audit_events(
        &self,
        by: &super::Principal,
        filter: AuditFilter,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>> {
        self.core.authority(by, "audit:read")?;
        self.query_audit(filter, before, limit).await
    }

    async fn query_audit(&self, filter: AuditFilter, before: Option<Uuid>, limit: usize) -> Result<Vec<AuditEvent>> {
        self.core
            .db(move |s| {
                let q = crate::store::AuditQuery {
                    subject: filter.user,
                    event: filter.event.as_deref(),
                    since_ms: filter.since_ms,
                    until_ms: filter.until_ms,
                    before,
                };
                s.read(|tx| tx.audit_events(&q, limit, &|e| filter.keeps(e)).map_err(Error::from))
            })
            .await
    }

    /// A user's own recent events, newest first. What an administrator did to the account shows
    /// as done by "an administrator", without the administrator's id or address.
    pub async fn my_events(&self, user: Uuid, limit: usize) -> Result<Vec<AuditEvent>> {
        let filter = AuditFilter { user: Some(user), ..Default::default() };
        let own = format!("user:{user}");
        let mut events = self.query_audit(filter, None, limit).await?;
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
    pub async fn prune_audit(&self) -> Result<usize> {
        let before =
            now_millis().saturating_sub(u64::try_from(self.core.cfg.audit.retention.0.as_millis()).unwrap_or(u64::MAX));
        self.core.db(move |s| s.write(|tx| tx.prune_audit(before).map_err(Error::from))).await
    }
}
