//! The audit log: filtered by event, user and time, newest first, with the API's cursor paging.

use std::sync::Arc;

use minijinja::{context, value::Value};
use poem::{
    Request, Response, handler,
    http::StatusCode,
    web::{Data, Query},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{Said, console_page, refusal, viewer};
use crate::{
    api::pages::locale,
    error::Error,
    model::rfc3339,
    service::audit::{AuditFilter, parse_instant},
};

const PAGE: usize = 50;

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
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            context! { time => rfc3339(e.time_ms / 1000), event => e.event.clone(), outcome => e.outcome.clone(),
            actor => e.actor.clone(), user => e.subject.map(|s| s.to_string()), ip => e.ip.clone() }
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
    let values = context! { events, older, event => q.event.clone(), user => q.user.clone(), since => q.since.clone() };
    console_page(&svc, status, &lang, "pages/admin/audit.html", &v, said, values)
}
