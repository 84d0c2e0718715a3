//! Webhooks: the endpoints, how deliveries stand, the newest that are not delivered, and a
//! retry for those that failed.

use std::sync::Arc;

use minijinja::{context, value::Value};
use poem::{
    Request, Response, handler,
    http::StatusCode,
    web::{Data, Form, Query},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{LangQuery, Said, console_page, poster, refusal, see_other, viewer};
use crate::{
    api::pages::{locale, text},
    error::Error,
    service::{AuthService, Viewer},
};

/// `GET /ui/admin/webhooks`.
#[handler]
pub(super) async fn list(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<LangQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let notice = q.done.as_ref().map(|_| text::of(&lang).admin_done);
    webhooks_page(&svc, &lang, &v, StatusCode::OK, Said { notice, ..Said::default() }, None).await
}

/// The page; `secret`: the secret of an endpoint just added, shown this once.
async fn webhooks_page(
    svc: &AuthService,
    lang: &str,
    v: &Viewer,
    status: StatusCode,
    said: Said,
    secret: Option<String>,
) -> Response {
    let p = v.principal();
    let found = async { Ok::<_, Error>((svc.webhooks.list(&p).await?, svc.webhooks.status(&p).await?)) };
    let (status, said, endpoints, counts) = match found.await {
        Ok((e, c)) => (status, said, e, Some(c)),
        Err(e) => {
            let (s, said) = refusal(lang, "/ui/admin/webhooks", e);
            (s, said, Vec::new(), None)
        }
    };
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|e| context! { id => e.id.map(|i| i.to_string()), url => e.url.clone(), events => e.events.join(", ") })
        .collect();
    let (counts, troubled) = match counts {
        Some(c) => {
            let troubled: Vec<Value> = c
                .recent
                .iter()
                .map(|(id, url, event, attempts, state, error)| {
                    context! { id, url, event, attempts, failed => state == "failed", state, error }
                })
                .collect();
            (Some(context! { pending => c.pending, delivered => c.delivered, failed => c.failed }), troubled)
        }
        None => (None, Vec::new()),
    };
    let values = context! { endpoints, counts, troubled, secret, can_write => v.may("webhooks:write") };
    console_page(svc, status, lang, "pages/admin/webhooks.html", v, said, values)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WebhookForm {
    csrf: String,
    lang: String,
    action: String,
    id: String,
    url: String,
    /// Event names, separated by spaces or commas.
    events: String,
    /// The signing secret (`whsec_…`); generated when empty.
    secret: String,
}

/// `POST /ui/admin/webhooks`: one change.
#[handler]
pub(super) async fn act(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<WebhookForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    let v = match poster(&svc, req, &lang, &f.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = v.principal();
    let id = || Uuid::parse_str(f.id.trim()).map_err(|_| Error::NotFound("webhook"));
    // A new endpoint receives the log of events; removing one silences it: a fresh sign-in.
    let fresh = match f.action.as_str() {
        "add" | "delete" => svc.console.destructive(&v, &["webhooks:write"]),
        _ => Ok(()),
    };
    let outcome: Result<Option<String>, Error> = match f.action.as_str() {
        _ if fresh.is_err() => fresh.map(|()| None),
        "add" => {
            let events = f.events.split([' ', ',']).filter(|e| !e.is_empty()).map(str::to_owned).collect();
            let secret = Some(f.secret.trim().to_owned()).filter(|s| !s.is_empty());
            svc.webhooks.add(&p, &f.url, events, secret).await.map(|w| w.secret)
        }
        "delete" => match id() {
            Ok(id) => svc.webhooks.delete(&p, id).await.map(|()| None),
            Err(e) => Err(e),
        },
        "retry" => match id() {
            Ok(id) => svc.webhooks.retry(&p, id).await.map(|()| None),
            Err(e) => Err(e),
        },
        _ => Err(Error::NotFound("action")),
    };
    match outcome {
        Ok(None) => see_other(&format!("/ui/admin/webhooks?lang={lang}&done=1")),
        Ok(Some(secret)) => {
            let said = Said { notice: Some(text::of(&lang).admin_done), ..Said::default() };
            webhooks_page(&svc, &lang, &v, StatusCode::OK, said, Some(secret)).await
        }
        Err(e) => {
            let (status, said) = refusal(&lang, "/ui/admin/webhooks", e);
            webhooks_page(&svc, &lang, &v, status, said, None).await
        }
    }
}
