//! Roles: their permissions, their holders (the users page filtered by the role), whether they
//! require a second factor; new roles and changes.

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
    error::Error,
    service::{AuthService, Viewer},
};

/// `GET /ui/admin/roles`.
#[handler]
pub(super) async fn list(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<LangQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let notice = q.done.as_ref().map(|_| text::of(&lang).admin_done);
    roles_page(&svc, &lang, &v, StatusCode::OK, Said { notice, ..Said::default() }).await
}

async fn roles_page(svc: &AuthService, lang: &str, v: &Viewer, status: StatusCode, said: Said) -> Response {
    let (status, said, roles) = match svc.roles.list(&v.principal()).await {
        Ok(roles) => (status, said, roles),
        Err(e) => {
            let (s, said) = refusal(lang, "/ui/admin/roles", e);
            (s, said, Vec::new())
        }
    };
    let roles: Vec<Value> = roles
        .iter()
        .map(|r| {
            let holders = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("lang", lang)
                .append_pair("role", &r.name)
                .finish();
            context! { name => r.name.clone(), permissions => r.permissions.clone(), builtin => r.builtin,
            require_mfa => r.require_mfa, holders }
        })
        .collect();
    let values = context! { roles, can_write => v.may("roles:write"), can_see_users => v.may("users:read") };
    console_page(svc, status, lang, "pages/admin/roles.html", v, said, values)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RoleForm {
    csrf: String,
    lang: String,
    action: String,
    name: String,
    /// Permissions, separated by spaces or commas.
    permission: String,
}

/// `POST /ui/admin/roles`: one change.
#[handler]
pub(super) async fn act(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<RoleForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    let v = match poster(&svc, req, &lang, &f.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Giving power (a new role, a permission, dropping a second factor) and deleting want a
    // fresh sign-in; taking a permission away or requiring a second factor do not.
    if matches!(f.action.as_str(), "create" | "grant" | "allow_without_mfa" | "delete")
        && let Err(e) = svc.console.destructive(&v, &["roles:write"])
    {
        let (status, said) = refusal(&lang, "/ui/admin/roles", e);
        return roles_page(&svc, &lang, &v, status, said).await;
    }
    let p = v.principal();
    let name = f.name.trim();
    let perms: Vec<String> =
        f.permission.split([' ', ',']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let outcome = match f.action.as_str() {
        "create" => svc.roles.create(&p, name, perms).await.map(|_| ()),
        "grant" => svc.roles.change(&p, name, perms, Vec::new()).await.map(|_| ()),
        "revoke" => svc.roles.change(&p, name, Vec::new(), perms).await.map(|_| ()),
        "require_mfa" => svc.roles.set_mfa(&p, name, true).await.map(|_| ()),
        "allow_without_mfa" => svc.roles.set_mfa(&p, name, false).await.map(|_| ()),
        "delete" => svc.roles.delete(&p, name, false).await.map(|_| ()),
        _ => Err(Error::NotFound("action")),
    };
    match outcome {
        Ok(()) => see_other(&format!("/ui/admin/roles?lang={lang}&done=1")),
        Err(e) => {
            let (status, said) = refusal(&lang, "/ui/admin/roles", e);
            roles_page(&svc, &lang, &v, status, said).await
        }
    }
}
