//! `/ui/admin`: the admin console, on the hosted-login session. Each page shows only what the
//! viewer's permissions allow ([`crate::service::Console`]), and each change is a form posted
//! with its CSRF token to the same services as the admin API, which judge it again.

mod audit;
mod clients;
mod keys;
mod roles;
mod users;
mod webhooks;

use std::sync::Arc;

use minijinja::{
    context,
    value::{Value, merge_maps},
};
use poem::{
    Request, Response, Route, handler,
    http::{StatusCode, header},
    web::{Data, Query},
};
use serde::Deserialize;

use super::{form_page, locale, page, sign_in::session_cookie_name, text};
use crate::{
    api::{cookies::read_cookie, problem::problem_response},
    error::Error,
    model::User,
    service::{AuthService, Viewer},
};

pub(super) fn routes() -> Route {
    Route::new()
        .at("/", poem::get(home))
        .at("/users", poem::get(users::list).post(users::create))
        .at("/users/:id", poem::get(users::show).post(users::act))
        .at("/audit", poem::get(audit::list))
        .at("/keys", poem::get(keys::list).post(keys::rotate))
        .at("/roles", poem::get(roles::list).post(roles::act))
        .at("/clients", poem::get(clients::list).post(clients::act))
        .at("/webhooks", poem::get(webhooks::list).post(webhooks::act))
}

/// The name a user goes by in the console.
fn login_of(u: &User) -> String {
    u.email.clone().or(u.username.clone()).or(u.phone.clone()).unwrap_or_else(|| u.id.to_string())
}

fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// The hosted login, coming back to `here` (a path of the console).
fn sign_in_link(lang: &str, here: &str) -> String {
    let rd: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
    format!("/ui/login?lang={lang}&rd={rd}")
}

/// The viewer of the request, or the answer instead: the hosted login when not signed in, 404
/// when the console is off, 403 without an admin permission.
async fn viewer(svc: &AuthService, req: &Request, lang: &str) -> Result<Viewer, Response> {
    let cookie = read_cookie(req, session_cookie_name(svc));
    match svc.console.viewer(cookie.as_deref()).await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => {
            let here = req.original_uri().path_and_query().map_or("/ui/admin", |p| p.as_str());
            Err(see_other(&sign_in_link(lang, here)))
        }
        Err(Error::Forbidden(_)) => {
            let values = context! { message => text::of(lang).admin_no_access, start_over => false };
            Err(page(svc, StatusCode::FORBIDDEN, lang, "pages/error.html", values))
        }
        Err(e) => Err(problem_response(e)),
    }
}

/// What a console page shows besides its own values.
#[derive(Default)]
struct Said {
    notice: Option<&'static str>,
    problem: Option<String>,
    /// A fresh sign-in is due: the link to it, coming back to this page.
    step_up: Option<String>,
}

/// A console page: the frame (sections by permission, who is signed in, what was said) and the
/// page's values.
fn console_page(
    svc: &AuthService,
    status: StatusCode,
    lang: &str,
    name: &str,
    v: &Viewer,
    said: Said,
    values: Value,
) -> Response {
    let frame = context! {
        viewer => login_of(&v.user),
        nav => context! { users => v.may("users:read"), roles => v.may("roles:read"), clients => v.may("clients:read"),
        webhooks => v.may("webhooks:read"), audit => v.may("audit:read"), keys => v.may("keys:read") },
        notice => said.notice, problem => said.problem, step_up => said.step_up,
    };
    form_page(svc, status, lang, name, merge_maps([frame, values]))
}

/// What a refused change says, and its status.
fn refusal(lang: &str, here: &str, e: Error) -> (StatusCode, Said) {
    let t = text::of(lang);
    if matches!(e, Error::StepUpRequired) {
        return (StatusCode::UNAUTHORIZED, Said { step_up: Some(sign_in_link(lang, here)), ..Said::default() });
    }
    let words = match &e {
        Error::Forbidden(_)
        | Error::TargetExceedsCaller(_)
        | Error::RoleNotGrantable { .. }
        | Error::PermissionNotHeld(_) => Some(t.admin_refused.to_owned()),
        Error::LastLoginMethod => Some(t.last_way_in.to_owned()),
        Error::NotFound(_) => Some(t.admin_not_found.to_owned()),
        Error::Invalid(fields) | Error::Malformed(fields) => {
            Some(fields.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; "))
        }
        _ => None,
    };
    let detail = e.to_string();
    let status = problem_response(e).status();
    let problem = match words {
        Some(w) => w,
        // The domain's own words for the rest of a caller's mistakes; nothing of a fault.
        None if status.is_client_error() => detail,
        None => {
            tracing::error!(error = %detail, "admin console action failed");
            t.failed.to_owned()
        }
    };
    (status, Said { problem: Some(problem), ..Said::default() })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LangQuery {
    lang: Option<String>,
    done: Option<String>,
}

/// `GET /ui/admin`: the sections the viewer may open.
#[handler]
async fn home(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<LangQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    console_page(&svc, StatusCode::OK, &lang, "pages/admin/home.html", &v, Said::default(), context! {})
}
