//! Users: found by login-name prefix, status and role, page by page; a user's page with what
//! the viewer may do to them; a new user.

use std::sync::Arc;

use minijinja::{context, value::Value};
use poem::{
    Request, Response, handler,
    http::StatusCode,
    web::{Data, Form, Path, Query},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{Said, console_page, login_of, poster, refusal, see_other, viewer};
use crate::{
    api::pages::{locale, text},
    error::Error,
    model::{UserStatus, rfc3339},
    service::{AuthService, NewAccount, UserFilter, Viewer, audit::AuditFilter},
};

const PAGE: usize = 50;

fn blank(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn status_of(s: &str) -> Option<UserStatus> {
    match s {
        "active" => Some(UserStatus::Active),
        "disabled" => Some(UserStatus::Disabled),
        _ => None,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ListQuery {
    lang: Option<String>,
    q: String,
    status: String,
    role: String,
    after: String,
    done: Option<String>,
}

/// `GET /ui/admin/users`.
#[handler]
pub(super) async fn list(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<ListQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let notice = q.done.as_ref().map(|_| text::of(&lang).admin_done);
    list_page(&svc, &lang, &v, &q, StatusCode::OK, Said { notice, ..Said::default() }).await
}

async fn list_page(
    svc: &AuthService,
    lang: &str,
    v: &Viewer,
    q: &ListQuery,
    status: StatusCode,
    said: Said,
) -> Response {
    let filter = UserFilter { role: blank(&q.role), status: status_of(&q.status), search: blank(&q.q) };
    let after = Uuid::parse_str(q.after.trim()).ok();
    let (status, said, users, next) = match svc.accounts.list_users_page(&v.principal(), after, PAGE, filter).await {
        Ok(page) => {
            let users: Vec<Value> = page
                .users
                .iter()
                .map(|u| {
                    context! { id => u.id.to_string(), login => login_of(u), status => u.status.as_str(),
                    roles => u.roles.join(", "), created => rfc3339(u.created_at) }
                })
                .collect();
            let next = page.next_cursor.map(|c| {
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("lang", lang)
                    .append_pair("q", &q.q)
                    .append_pair("status", &q.status)
                    .append_pair("role", &q.role)
                    .append_pair("after", &c.to_string())
                    .finish()
            });
            (status, said, users, next)
        }
        Err(e) => {
            let (s, said) = refusal(lang, "/ui/admin/users", e);
            (s, said, Vec::new(), None)
        }
    };
    let values = context! {
        users, next, q => q.q.clone(), role => q.role.clone(), status => q.status.clone(),
        can_create => v.may("users:write"),
    };
    console_page(svc, status, lang, "pages/admin/users.html", v, said, values)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CreateForm {
    csrf: String,
    lang: String,
    email: String,
    role: String,
    password: String,
}

/// `POST /ui/admin/users`: a new user, then their page.
#[handler]
pub(super) async fn create(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<CreateForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    let v = match poster(&svc, req, &lang, &f.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let account = NewAccount {
        email: blank(&f.email),
        phone: None,
        username: None,
        password: blank(&f.password),
        roles: vec![blank(&f.role).unwrap_or_else(|| "user".into())],
        locale: None,
    };
    let created = match svc.console.destructive(&v, &["users:write"]) {
        Ok(()) => svc.accounts.create_user(&v.principal(), account).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(u) => see_other(&format!("/ui/admin/users/{}?lang={lang}&done=1", u.id)),
        Err(e) => {
            let (status, said) = refusal(&lang, "/ui/admin/users", e);
            list_page(&svc, &lang, &v, &ListQuery::default(), status, said).await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ShowQuery {
    lang: Option<String>,
    done: Option<String>,
}

/// `GET /ui/admin/users/{id}`.
#[handler]
pub(super) async fn show(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let v = match viewer(&svc, req, &lang).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let notice = q.done.as_ref().map(|_| text::of(&lang).admin_done);
    user_page(&svc, &lang, &v, &id, StatusCode::OK, Said { notice, ..Said::default() }, None).await
}

/// A user's page; `link`: a recovery link just made, shown this once.
async fn user_page(
    svc: &AuthService,
    lang: &str,
    v: &Viewer,
    id: &str,
    status: StatusCode,
    said: Said,
    link: Option<String>,
) -> Response {
    let p = v.principal();
    let gathered = async {
        let id = Uuid::parse_str(id).map_err(|_| Error::NotFound("user"))?;
        let user = svc.accounts.admin_user(&p, id).await?;
        let sessions = svc.accounts.admin_sessions(&p, id).await?;
        let identities = svc.upstream.admin_identities(&p, id).await?;
        let passkeys = svc.passkeys.list(id).await?;
        let events = match v.may("audit:read") {
            true => {
                let filter = AuditFilter { user: Some(id), ..AuditFilter::default() };
                svc.audit.events(&p, filter, None, 20).await?
            }
            false => Vec::new(),
        };
        Ok::<_, Error>((user, sessions, identities, passkeys, events))
    };
    let (user, sessions, identities, passkeys, events) = match gathered.await {
        Ok(g) => g,
        Err(e) => {
            let (status, said) = refusal(lang, "/ui/admin/users", e);
            return list_page(svc, lang, v, &ListQuery::default(), status, said).await;
        }
    };
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|s| {
            let device = s.device_name.clone().or(s.user_agent.clone()).unwrap_or_else(|| "?".into());
            context! { id => s.id.to_string(), device, ip => s.ip.clone().unwrap_or_default(),
            last_used => rfc3339(s.last_used_at), client => s.client_id.map(|c| c.to_string()) }
        })
        .collect();
    let identities: Vec<Value> = identities
        .iter()
        .map(|i| context! { id => i.id.to_string(), provider => i.provider.clone(), email => i.email.clone() })
        .collect();
    let passkeys: Vec<Value> = passkeys
        .iter()
        .map(|k| context! { id => k.id.to_string(), name => k.name.clone(), created => rfc3339(k.created_at) })
        .collect();
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            context! { time => rfc3339(e.time_ms / 1000), event => e.event.clone(), outcome => e.outcome.clone(),
            actor => e.actor.clone(), ip => e.ip.clone() }
        })
        .collect();
    let values = context! {
        user => context! { id => user.id.to_string(), login => login_of(&user), email => user.email.clone(),
        phone => user.phone.clone(), username => user.username.clone(), name => user.display_name.clone(),
        status => user.status.as_str(), disabled => user.status == UserStatus::Disabled, roles => user.roles.clone(),
        created => rfc3339(user.created_at), totp => user.has_totp() },
        can => context! { write => v.may("users:write"), disable => v.may("users:write") || v.may("users:disable"),
        revoke => v.may("sessions:revoke"), audit => v.may("audit:read") },
        sessions, identities, passkeys, events, link,
    };
    console_page(svc, status, lang, "pages/admin/user.html", v, said, values)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ActForm {
    csrf: String,
    lang: String,
    action: String,
    /// The session, identity or passkey acted on; the role granted or revoked.
    item: String,
}

/// `POST /ui/admin/users/{id}`: one action on a user.
#[handler]
pub(super) async fn act(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    Path(id): Path<String>,
    Form(f): Form<ActForm>,
) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    let v = match poster(&svc, req, &lang, &f.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let here = format!("/ui/admin/users/{id}");
    let outcome: Result<Option<String>, Error> = async {
        let uid = Uuid::parse_str(&id).map_err(|_| Error::NotFound("user"))?;
        let who = uid.to_string();
        let item = || Uuid::parse_str(f.item.trim()).map_err(|_| Error::NotFound("item"));
        let p = v.principal();
        match f.action.as_str() {
            "disable" => {
                svc.console.destructive(&v, &["users:write", "users:disable"])?;
                svc.accounts.set_status(&p, &who, UserStatus::Disabled).await.map(|_| None)
            }
            "enable" => svc.accounts.set_status(&p, &who, UserStatus::Active).await.map(|_| None),
            "grant" | "revoke" => {
                // Giving power wants a fresh sign-in; taking it away does not.
                if f.action == "grant" {
                    svc.console.destructive(&v, &["users:write"])?;
                }
                let user = svc.accounts.admin_user(&p, uid).await?;
                let role = f.item.trim().to_owned();
                let mut roles = user.roles.clone();
                match f.action.as_str() {
                    "grant" if roles.contains(&role) => return Ok(None),
                    "grant" => roles.push(role),
                    _ => roles.retain(|r| *r != role),
                }
                svc.accounts.set_roles(&p, &who, roles).await.map(|_| None)
            }
            "end_session" => svc.accounts.admin_end_session(&p, uid, item()?).await.map(|()| None),
            "end_sessions" => {
                svc.console.destructive(&v, &["sessions:revoke"])?;
                svc.accounts.admin_end_sessions(&p, uid).await.map(|()| None)
            }
            "unlink" => {
                svc.console.destructive(&v, &["users:write"])?;
                svc.upstream.admin_unlink_identity(&p, uid, item()?).await.map(|()| None)
            }
            "mfa_reset" => {
                svc.console.destructive(&v, &["users:write"])?;
                svc.factors.reset_mfa(&p, &who).await.map(|_| None)
            }
            "remove_passkey" => {
                svc.console.destructive(&v, &["users:write"])?;
                svc.passkeys.admin_remove(&p, uid, item()?).await.map(|()| None)
            }
            // A link that enrols a passkey is a way into the account: a fresh sign-in first.
            "recovery_link" => {
                svc.console.destructive(&v, &["users:write"])?;
                svc.recovery.recovery_link(&p, &who).await.map(|(_, link)| Some(link))
            }
            _ => Err(Error::NotFound("action")),
        }
    }
    .await;
    match outcome {
        Ok(None) => see_other(&format!("{here}?lang={lang}&done=1")),
        Ok(Some(link)) => {
            let said = Said { notice: Some(text::of(&lang).admin_done), ..Said::default() };
            user_page(&svc, &lang, &v, &id, StatusCode::OK, said, Some(link)).await
        }
        Err(e) => {
            let (status, said) = refusal(&lang, &here, e);
            user_page(&svc, &lang, &v, &id, status, said, None).await
        }
    }
}
