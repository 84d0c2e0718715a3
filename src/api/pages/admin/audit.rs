//! The audit log: filtered by event, user and time, newest first, with the API's cursor paging.

use std::sync::Arc;

use minijinja::{context, value::Value};
use poem::{
    IntoResponse as _, Request, Response, handler,
    http::StatusCode,
    web::{
        Data, Query,
        sse::{Event, SSE},
    },
};
use serde::Deserialize;
use uuid::Uuid;

use super::{Said, console_page, refusal, viewer};
use crate::{
    api::{
        cookies::read_cookie,
        pages::{locale, sign_in::session_cookie_name},
        problem::problem_response,
    },
    error::Error,
    model::{AuditEvent, rfc3339},
    service::audit::{AuditFilter, parse_instant},
};

const PAGE: usize = 50;

/// An event as a row of the table, and as the live tail sends it.
#[derive(serde::Serialize)]
struct Row {
    time: String,
    event: String,
    outcome: String,
    actor: String,
    user: Option<String>,
    ip: Option<String>,
}

fn row(e: &AuditEvent) -> Row {
    Row {
        time: rfc3339(e.time_ms / 1000),
        event: e.event.clone(),
        outcome: e.outcome.clone(),
        actor: e.actor.clone(),
        user: e.subject.map(|s| s.to_string()),
        ip: e.ip.clone(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TailQuery {
    after: String,
}

/// `GET /ui/admin/audit/stream?after=<event id>`: events newer than that one, as server-sent
/// events, for the page's live tail. The viewer is checked again before each look, so a sign-out,
/// a disable or a lost permission ends the stream. A burst is sent a page at a time without
/// waiting in between; a session holds a few tails at once, a newer one ending the oldest.
#[handler]
pub(super) async fn stream(
    svc: Data<&Arc<crate::service::AuthService>>,
    req: &Request,
    Query(q): Query<TailQuery>,
) -> Response {
    let lang = locale(&svc, req, None);
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(after) = Uuid::parse_str(q.after.trim()) else {
        return problem_response(Error::invalid("after", "invalid_cursor", "the id of an audit event"));
    };
    // A browser reconnecting says what it last got: from there, not from the page's cursor.
    let resumed = req.header("last-event-id").and_then(|h| Uuid::parse_str(h.trim()).ok());
    let after = resumed.map_or(after, |r| r.max(after));
    // Held by the stream: its place is freed when the browser goes.
    let slot = match svc.console.open_tail(&v) {
        Ok(s) => s,
        Err(e) => return problem_response(e),
    };
    let cookie = read_cookie(req, session_cookie_name(&svc));
    let svc = Arc::clone(&svc);
    let events = futures_util::stream::unfold((after, false, slot), move |(mut after, behind, slot)| {
        let (svc, cookie) = (Arc::clone(&svc), cookie.clone());
        async move {
            // After a full page there is more to send now.
            let mut wait = !behind;
            loop {
                if wait {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                wait = true;
                if slot.is_ended() {
                    return None;
                }
                let Ok(Some(v)) = svc.console.viewer(cookie.as_deref()).await else { return None };
                let Ok(found) = svc.audit.newer(&v.principal(), after, PAGE).await else { return None };
                if let Some(last) = found.last() {
                    after = last.id;
                    let rows: Vec<Row> = found.iter().map(row).collect();
                    let data = serde_json::to_string(&rows).unwrap_or_default();
                    let event = Event::message(data).event_type("audit").id(after.to_string());
                    return Some((event, (after, found.len() == PAGE, slot)));
                }
            }
        }
    });
    SSE::new(events).keep_alive(std::time::Duration::from_secs(15)).into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct AuditQuery {
    lang: Option<String>,
    event: String,
    /// A login name or a user id.
    user: String,
    since: String,
    before: String,
}

/// `GET /ui/admin/audit`.
#[handler]
pub(super) async fn list(
    svc: Data<&Arc<crate::service::AuthService>>,
    req: &Request,
    Query(q): Query<AuditQuery>,
) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = v.principal();
    let found = async {
        let user = match q.user.trim() {
            "" => None,
            who => match Uuid::parse_str(who) {
                Ok(id) => Some(id),
                Err(_) => Some(svc.accounts.admin_find_user(&p, who).await?.id),
            },
        };
        let since = q.since.trim();
        let filter = AuditFilter {
            user,
            event: Some(q.event.trim().to_owned()).filter(|e| !e.is_empty()),
            since_ms: (!since.is_empty()).then(|| parse_instant("since", since)).transpose()?,
            ..AuditFilter::default()
        };
        let before = Uuid::parse_str(q.before.trim()).ok();
        let mut events = svc.audit.events(&p, filter, before, PAGE + 1).await?;
        let older = (events.len() > PAGE).then(|| {
            events.truncate(PAGE);
            events.last().map(|e| e.id)
        });
        Ok::<_, Error>((events, older.flatten()))
    };
    let (status, said, events, older) = match found.await {
        Ok((events, older)) => (StatusCode::OK, Said::default(), events, older),
        Err(e) => {
            let (s, said) = refusal(&lang, "/ui/admin/audit", e);
            (s, said, Vec::new(), None)
        }
    };
    let newest = events.first().map(|e| e.id);
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let r = row(e);
            context! { time => r.time, event => r.event, outcome => r.outcome, actor => r.actor, user => r.user, ip => r.ip }
        })
        .collect();
    let older = older.map(|c| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("lang", &lang)
            .append_pair("event", &q.event)
            .append_pair("user", &q.user)
            .append_pair("since", &q.since)
            .append_pair("before", &c.to_string())
            .finish()
    });
    // The first page, unfiltered, follows new events where the browser can.
    let unfiltered = q.event.trim().is_empty() && q.user.trim().is_empty() && q.since.trim().is_empty();
    let tail = (unfiltered && q.before.trim().is_empty()).then(|| newest.map(|id| id.to_string())).flatten();
    let values =
        context! { events, older, tail, event => q.event.clone(), user => q.user.clone(), since => q.since.clone() };
    console_page(&svc, status, &lang, "pages/admin/audit.html", &v, said, values)
}
