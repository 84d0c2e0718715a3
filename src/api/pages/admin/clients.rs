//! Clients: OpenID relying parties and backends. Create, edit redirect URIs and flags, rotate
//! the secret (shown once), delete.

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
    model::rfc3339,
    service::{AuthService, ClientEdit, NewClient, Viewer},
};

/// `GET /ui/admin/clients`.
#[handler]
pub(super) async fn list(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<LangQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let notice = q.done.as_ref().map(|_| text::of(&lang).admin_done);
    clients_page(&svc, &lang, &v, StatusCode::OK, Said { notice, ..Said::default() }, None).await
}

/// The page; `secret`: a client id and its secret just made, shown this once.
async fn clients_page(
    svc: &AuthService,
    lang: &str,
    v: &Viewer,
    status: StatusCode,
    said: Said,
    secret: Option<(String, String)>,
) -> Response {
    let (status, said, clients) = match svc.clients.list(&v.principal()).await {
        Ok(c) => (status, said, c),
        Err(e) => {
            let (s, said) = refusal(lang, "/ui/admin/clients", e);
            (s, said, Vec::new())
        }
    };
    let clients: Vec<Value> = clients
        .iter()
        .map(|c| {
            context! { id => c.client_id.to_string(), name => c.name.clone(), roles => c.roles.join(", "),
            redirect_uris => c.redirect_uris.join("\n"), post_logout_redirect_uris => c.post_logout_redirect_uris.join("\n"),
            public => c.token_endpoint_auth_method == "none", trusted => c.trusted, require_par => c.require_par,
            created => rfc3339(c.created_at) }
        })
        .collect();
    let secret = secret.map(|(id, secret)| context! { id, secret });
    let values = context! { clients, secret, can_write => v.may("clients:write") };
    console_page(svc, status, lang, "pages/admin/clients.html", v, said, values)
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ClientForm {
    csrf: String,
    lang: String,
    action: String,
    id: String,
    name: String,
    roles: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    /// Checkboxes: present when ticked.
    public: Option<String>,
    trusted: Option<String>,
    require_par: Option<String>,
}

/// `POST /ui/admin/clients`: one change.
#[handler]
pub(super) async fn act(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<ClientForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    let v = match poster(&svc, req, &lang, &f.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = v.principal();
    let outcome: Result<Option<(String, String)>, Error> = async {
        let id = || Uuid::parse_str(f.id.trim()).map_err(|_| Error::NotFound("client"));
        // Every change to a client can hand out or redirect power: a fresh sign-in first.
        svc.console.destructive(&v, &["clients:write"])?;
        match f.action.as_str() {
            "create" => {
                let new = NewClient {
                    name: f.name.clone(),
                    roles: f.roles.split([' ', ',']).filter(|r| !r.is_empty()).map(str::to_owned).collect(),
                    redirect_uris: lines(&f.redirect_uris),
                    post_logout_redirect_uris: lines(&f.post_logout_redirect_uris),
                    trusted: f.trusted.is_some(),
                    require_par: f.require_par.is_some(),
                    token_endpoint_auth_method: f.public.as_ref().map(|_| "none".to_owned()),
                    ..NewClient::default()
                };
                let c = svc.clients.create(&p, new).await?;
                Ok(c.client_secret.map(|s| (c.client_id.to_string(), s)))
            }
            "edit" => {
                let edit = ClientEdit {
                    redirect_uris: lines(&f.redirect_uris),
                    post_logout_redirect_uris: lines(&f.post_logout_redirect_uris),
                    trusted: f.trusted.is_some(),
                    require_par: f.require_par.is_some(),
                };
                svc.clients.edit(&p, id()?, edit).await.map(|_| None)
            }
            "rotate" => {
                let c = svc.clients.rotate_secret(&p, id()?).await?;
                Ok(c.client_secret.map(|s| (c.client_id.to_string(), s)))
            }
            "delete" => svc.clients.delete(&p, id()?).await.map(|()| None),
            _ => Err(Error::NotFound("action")),
        }
    }
    .await;
    match outcome {
        Ok(None) => see_other(&format!("/ui/admin/clients?lang={lang}&done=1")),
        Ok(Some(secret)) => {
            let said = Said { notice: Some(text::of(&lang).admin_done), ..Said::default() };
            clients_page(&svc, &lang, &v, StatusCode::OK, said, Some(secret)).await
        }
        Err(e) => {
            let (status, said) = refusal(&lang, "/ui/admin/clients", e);
            clients_page(&svc, &lang, &v, status, said, None).await
        }
    }
}
