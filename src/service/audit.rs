//! The audit trail. Events that describe a change are written in the same transaction as the
//! change; events without one (failed logins, throttling) go through a bounded background
//! writer that batches them, so a flood of failures cannot turn into a flood of disk commits.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
};

use uuid::Uuid;

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
    pub(super) fn keeps(&self, e: &AuditEvent) -> bool {
        self.user.is_none_or(|u| e.subject == Some(u))
            && self.event.as_deref().is_none_or(|ev| e.event == ev || e.event.starts_with(&format!("{ev}.")))
            && self.outcome.as_deref().is_none_or(|o| e.outcome == o)
            && self.since_ms.is_none_or(|s| e.time_ms >= s)
            && self.until_ms.is_none_or(|u| e.time_ms < u)
    }
}
