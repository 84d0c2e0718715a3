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

use super::{csrf_ok, forbidden, form_page, locale, page, sign_in::session_cookie_name, text};
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
        .at("/audit/stream", poem::get(audit::stream))
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
    // With a listener of its own, the console is not there on the public one.
    if svc.config().admin.console_bind.is_some() && req.data::<crate::api::ConsoleListener>().is_none() {
        return Err(problem_response(Error::NoRoute));
    }
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

/// The viewer of a form posted to the console, checked before its CSRF token so that the public
/// listener gives no sign of a console on its own listener.
async fn poster(svc: &AuthService, req: &Request, lang: &str, csrf: &str) -> Result<Viewer, Response> {
    let v = viewer(svc, req, lang).await?;
    if !csrf_ok(svc, req, csrf) {
        return Err(forbidden(svc, lang));
    }
    Ok(v)
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
    let (status, said, values) = match svc.console.overview(&v).await {
        Ok(o) => {
            let activity = o.activity.map(|a| {
                context! { logins_hour => a.logins_hour, failures_hour => a.failures_hour, logins_day => a.logins_day,
                failures_day => a.failures_day,
                chart => Value::from_safe_string(activity_chart(&a.hourly, text::of(&lang).admin_chart)) }
            });
            (StatusCode::OK, Said::default(), context! { users => o.users, sessions => o.sessions, activity })
        }
        Err(e) => {
            let (s, said) = refusal(&lang, "/ui/admin", e);
            (s, said, context! { users => None::<u64>, sessions => None::<u64>, activity => None::<Value> })
        }
    };
    console_page(&svc, status, &lang, "pages/admin/home.html", &v, said, values)
}

/// Sign-ins (blue) and failed sign-ins (red) per hour, as an SVG drawn here from numbers
/// alone: no script, no style attribute, nothing from the request.
fn activity_chart(hourly: &[(u64, u32, u32)], title: &str) -> String {
    const HEIGHT: u32 = 100;
    let max = hourly.iter().map(|&(_, a, b)| a.max(b)).max().unwrap_or(0).max(1);
    let bar = |v: u32| u64::from(v) * u64::from(HEIGHT) / u64::from(max);
    let title = title.replace('&', "&amp;").replace('<', "&lt;");
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"100%\" role=\"img\" \
         aria-labelledby=\"chart-title\" id=\"chart\"><title id=\"chart-title\">{title}</title>",
        hourly.len() * 20,
        HEIGHT + 2
    );
    for (i, &(_, logins, failures)) in hourly.iter().enumerate() {
        let x = i * 20;
        let (l, f) = (bar(logins), bar(failures));
        svg += &format!(
            "<rect x=\"{}\" y=\"{}\" width=\"8\" height=\"{l}\" fill=\"#1a56db\"/>",
            x + 2,
            u64::from(HEIGHT) - l
        );
        svg += &format!(
            "<rect x=\"{}\" y=\"{}\" width=\"8\" height=\"{f}\" fill=\"#b91c1c\"/>",
            x + 10,
            u64::from(HEIGHT) - f
        );
    }
    svg += &format!(
        "<line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{}\" y2=\"{HEIGHT}\" stroke=\"#1a1a1a\"/></svg>",
        hourly.len() * 20
    );
    svg
}
