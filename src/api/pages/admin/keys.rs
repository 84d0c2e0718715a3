//! Signing keys: the active and retired ones, and rotation.

use std::sync::Arc;

use minijinja::{context, value::Value};
use poem::{
    Request, Response, handler,
    http::StatusCode,
    web::{Data, Form, Query},
};
use serde::Deserialize;

use super::{LangQuery, Said, console_page, poster, refusal, see_other, viewer};
use crate::{
    api::pages::{locale, text},
    model::rfc3339,
    service::{AuthService, Viewer},
};

/// `GET /ui/admin/keys`.
#[handler]
pub(super) async fn list(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<LangQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let notice = q.done.as_ref().map(|_| text::of(&lang).admin_done);
    keys_page(&svc, &lang, &v, StatusCode::OK, Said { notice, ..Said::default() }).await
}

async fn keys_page(svc: &AuthService, lang: &str, v: &Viewer, status: StatusCode, said: Said) -> Response {
    let (status, said, keys) = match svc.keys.list(&v.principal()).await {
        Ok(keys) => (status, said, keys),
        Err(e) => {
            let (s, said) = refusal(lang, "/ui/admin/keys", e);
            (s, said, Vec::new())
        }
    };
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            context! { kid => k.kid.clone(), alg => k.alg.clone(), state => k.state.clone(),
            created => rfc3339(k.created_at), retire_at => k.retire_at.map(rfc3339) }
        })
        .collect();
    let values = context! { keys, can_rotate => v.may("keys:rotate") };
    console_page(svc, status, lang, "pages/admin/keys.html", v, said, values)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RotateForm {
    csrf: String,
    lang: String,
}

/// `POST /ui/admin/keys`: a new active key, after a recent sign-in.
#[handler]
pub(super) async fn rotate(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<RotateForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    let v = match poster(&svc, req, &lang, &f.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rotated = match svc.console.destructive(&v, &["keys:rotate"]) {
        Ok(()) => svc.keys.rotate(&v.principal()).await,
        Err(e) => Err(e),
    };
    match rotated {
        Ok(_) => see_other(&format!("/ui/admin/keys?lang={lang}&done=1")),
        Err(e) => {
            let (status, said) = refusal(&lang, "/ui/admin/keys", e);
            keys_page(&svc, &lang, &v, status, said).await
        }
    }
}
