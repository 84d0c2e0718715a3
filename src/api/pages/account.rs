//! `/ui/account`: the user's own page on the hosted-login session. Each change is one form
//! posted to `/ui/account` with an `action`, acted on by the same services (and step-up rules)
//! as the API; adding a passkey is two JSON calls the passkey script makes.

use std::sync::Arc;

use minijinja::{context, value::Value};
use poem::{
    IntoResponse as _, Request, Response, handler,
    http::{StatusCode, header},
    web::{Data, Form, Json, Query},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{csrf_ok, forbidden, form_page, locale, sign_in::session_cookie_name, text};
use crate::{
    api::{client::client_info, cookies::read_cookie, problem::problem_response},
    error::Error,
    model::{User, rfc3339},
    service::{AuthContext, AuthService, Enroller, MeChange, SecondFactor},
};

/// The signed-in user of the browser, if any.
async fn signed_in(svc: &AuthService, req: &Request) -> Result<Option<(AuthContext, User)>, Error> {
    let cookie = read_cookie(req, session_cookie_name(svc));
    svc.provider.account_context(cookie.as_deref()).await
}

fn to_login(lang: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, format!("/ui/login?lang={lang}"))
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// What the page shows once besides the account.
#[derive(Default)]
struct Shown {
    notice: Option<&'static str>,
    problem: Option<String>,
    step_up: bool,
    enrolment: Option<(String, String)>,
    recovery_codes: Vec<String>,
}

async fn render(
    svc: &AuthService,
    lang: &str,
    status: StatusCode,
    ctx: &AuthContext,
    user: &User,
    shown: Shown,
) -> Response {
    let uid = user.id;
    let gathered = async {
        let passkeys = svc.passkeys.list(uid).await?;
        let identities = svc.upstream.identities(uid).await?;
        let sessions = svc.sessions.list_sessions(uid).await?;
        let events = svc.audit.mine(uid, 20).await?;
        Ok::<_, Error>((passkeys, identities, sessions, events))
    };
    let (passkeys, identities, sessions, events) = match gathered.await {
        Ok(v) => v,
        Err(e) => return problem_response(e),
    };
    let passkeys: Vec<Value> = passkeys
        .iter()
        .map(|p| {
            context! { id => p.id.to_string(), name => p.name.clone(), backed_up => p.backed_up,
            created => rfc3339(p.created_at), last_used => (p.last_used_at > 0).then(|| rfc3339(p.last_used_at)) }
        })
        .collect();
    let identities: Vec<Value> = identities
        .iter()
        .map(|i| context! { id => i.id.to_string(), provider => i.provider.clone(), email => i.email.clone() })
        .collect();
    let sessions: Vec<Value> = sessions
        .iter()
        .filter(|s| s.client_id.is_none())
        .map(|s| {
            let device = s.device_name.clone().or(s.user_agent.clone()).unwrap_or_else(|| "?".into());
            context! { id => s.id.to_string(), device, ip => s.ip.clone().unwrap_or_default(),
            last_used => rfc3339(s.last_used_at), current => s.id == ctx.session_id }
        })
        .collect();
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let time = rfc3339(e.time_ms / 1000);
            context! { time, event => e.event.clone(), ip => e.ip.clone() }
        })
        .collect();
    let enrolment = shown.enrolment.map(|(secret, qr)| context! { secret, qr => Value::from_safe_string(qr) });
    let providers: Vec<Value> = svc
        .upstream
        .providers()
        .into_iter()
        .map(|p| context! { name => p.name, display_name => p.display_name })
        .collect();
    let values = context! {
        providers,
        user => context! { display_name => user.display_name.clone(), email => user.email.clone(), email_verified => user.email_verified,
        phone => user.phone.clone(), phone_verified => user.phone_verified, username => user.username.clone() },
        has_password => user.password_hash.is_some(), totp => user.has_totp(),
        passkeys, identities, sessions, events, enrolment,
        recovery_codes => shown.recovery_codes, notice => shown.notice, problem => shown.problem,
        step_up => shown.step_up,
    };
    form_page(svc, status, lang, "pages/account.html", values)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DoneQuery {
    lang: Option<String>,
    done: Option<String>,
    /// Back from a provider: linked, or not.
    linked: Option<String>,
    error: Option<String>,
}

/// `GET /ui/account`.
#[handler]
pub(super) async fn account_page(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<DoneQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    match signed_in(&svc, req).await {
        Ok(Some((ctx, user))) => {
            let t = text::of(&lang);
            let notice = match (&q.done, &q.linked) {
                (_, Some(_)) => Some(t.linked),
                (Some(_), None) => Some(t.done),
                _ => None,
            };
            let problem = q.error.map(|_| t.link_failed.to_owned());
            render(&svc, &lang, StatusCode::OK, &ctx, &user, Shown { notice, problem, ..Shown::default() }).await
        }
        Ok(None) => to_login(&lang),
        Err(e) => problem_response(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct AccountForm {
    csrf: String,
    lang: String,
    action: String,
    id: String,
    email: String,
    phone: String,
    display_name: String,
    name: String,
    code: String,
    current_password: String,
    new_password: String,
}

/// The status and words of a refused change.
fn refusal(svc: &AuthService, lang: &str, e: &Error) -> (StatusCode, String, bool) {
    let t = text::of(lang);
    match e {
        Error::StepUpRequired => (StatusCode::UNAUTHORIZED, t.step_up_needed.to_owned(), true),
        Error::LastLoginMethod => (StatusCode::CONFLICT, t.last_way_in.to_owned(), false),
        Error::WrongCurrentPassword => (StatusCode::FORBIDDEN, t.wrong_current_password.to_owned(), false),
        Error::InvalidMfaCode => (StatusCode::UNPROCESSABLE_ENTITY, t.wrong_code.to_owned(), false),
        Error::RateLimited(_) | Error::TooManyAttempts(_) | Error::ChallengeRequired => {
            (StatusCode::TOO_MANY_REQUESTS, t.too_many.to_owned(), false)
        }
        Error::Invalid(fields) | Error::Malformed(fields) => {
            (StatusCode::UNPROCESSABLE_ENTITY, super::in_words(svc, lang, fields), false)
        }
        Error::Conflict(_) => (StatusCode::CONFLICT, t.address_taken.to_owned(), false),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, t.failed.to_owned(), false),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, t.failed.to_owned(), false),
    }
}

fn done(lang: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, format!("/ui/account?lang={lang}&done=1"))
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

fn id_of(f: &AccountForm) -> Result<Uuid, Error> {
    Uuid::parse_str(&f.id).map_err(|_| Error::NotFound("item"))
}

/// `POST /ui/account`: one change.
#[handler]
pub(super) async fn account_submit(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    Form(f): Form<AccountForm>,
) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    let (ctx, user) = match signed_in(&svc, req).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_login(&lang),
        Err(e) => return problem_response(e),
    };
    let ip = client_info(req).ip;
    let blank = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let outcome: Result<Option<Shown>, Error> = match f.action.as_str() {
        "profile" => {
            let change = MeChange {
                name: Some(f.display_name.trim().to_owned()),
                email: blank(&f.email),
                phone: blank(&f.phone),
                locale: None,
                new_device_notices: None,
            };
            svc.verification.update_me(&ctx, change).await.map(|_| None)
        }
        "password" => {
            svc.sessions.change_password(&ctx, &f.current_password, &f.new_password, ip, None).await.map(|()| None)
        }
        "totp_begin" => svc
            .factors
            .begin_totp(&ctx)
            .await
            .map(|e| Some(Shown { enrolment: Some((e.secret, e.qr_svg)), ..Shown::default() })),
        "totp_confirm" => svc
            .factors
            .confirm_totp(&ctx, f.code.trim())
            .await
            .map(|codes| Some(Shown { recovery_codes: codes, ..Shown::default() })),
        "totp_off" => {
            let code = f.code.trim();
            let factor = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
                SecondFactor::Totp(code.to_owned())
            } else {
                SecondFactor::Recovery(code.to_owned())
            };
            svc.factors.disable_totp(&ctx, &f.current_password, factor, ip).await.map(|()| None)
        }
        "passkey_rename" => match id_of(&f) {
            Ok(id) => svc.passkeys.rename(&ctx, id, &f.name).await.map(|_| None),
            Err(e) => Err(e),
        },
        "passkey_remove" => match id_of(&f) {
            Ok(id) => svc.passkeys.remove(&ctx, id).await.map(|()| None),
            Err(e) => Err(e),
        },
        "unlink" => match id_of(&f) {
            Ok(id) => svc.upstream.unlink_identity(&ctx, id).await.map(|()| None),
            Err(e) => Err(e),
        },
        "end_session" => match id_of(&f) {
            Ok(id) if id == ctx.session_id => Err(Error::NotFound("session")),
            Ok(id) => svc.sessions.revoke_session(ctx.user_id, id).await.map(|()| None),
            Err(e) => Err(e),
        },
        "link" => match svc.upstream.hosted_link_start(&ctx, &f.id).await {
            Ok((go, started)) => {
                let cookie = crate::api::upstream::login_cookie(&svc, &started, 600);
                let mut resp = Response::builder()
                    .status(StatusCode::SEE_OTHER)
                    .header(header::LOCATION, go.location)
                    .header(header::CACHE_CONTROL, "no-store")
                    .finish();
                if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                return resp;
            }
            Err(e) => Err(e),
        },
        "end_others" => svc.sessions.end_other_sessions(ctx.user_id, ctx.session_id).await.map(|_| None),
        _ => Err(Error::NotFound("action")),
    };
    match outcome {
        Ok(None) => done(&lang),
        Ok(Some(shown)) => match signed_in(&svc, req).await {
            Ok(Some((ctx, user))) => render(&svc, &lang, StatusCode::OK, &ctx, &user, shown).await,
            Ok(None) => to_login(&lang),
            Err(e) => problem_response(e),
        },
        Err(e) => {
            let (status, problem, step_up) = refusal(&svc, &lang, &e);
            if status.is_server_error() {
                tracing::error!(error = %e, "account page change failed");
            }
            let shown = Shown { problem: Some(problem), step_up, ..Shown::default() };
            render(&svc, &lang, status, &ctx, &user, shown).await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PasskeyCall {
    csrf: String,
    ceremony: String,
    credential: serde_json::Value,
    name: Option<String>,
}

/// The JSON answer of the passkey calls: a problem, or the value.
fn json_answer(r: Result<serde_json::Value, Error>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => problem_response(e),
    }
}

/// `POST /ui/account/passkey`: starts adding a passkey (step-up as in the API).
#[handler]
pub(super) async fn passkey_begin(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    Json(call): Json<PasskeyCall>,
) -> Response {
    if !csrf_ok(&svc, req, &call.csrf) {
        return problem_response(Error::CsrfFailed);
    }
    let r = async {
        let (ctx, _) = signed_in(&svc, req).await?.ok_or(Error::InvalidToken(crate::error::TokenError::Malformed))?;
        let (ceremony, options) = svc.passkeys.begin_registration(&Enroller::Session(Box::new(ctx))).await?;
        Ok(serde_json::json!({"ceremony": ceremony, "public_key": options}))
    };
    json_answer(r.await)
}

/// `POST /ui/account/passkey/finish`.
#[handler]
pub(super) async fn passkey_finish(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    Json(call): Json<PasskeyCall>,
) -> Response {
    if !csrf_ok(&svc, req, &call.csrf) {
        return problem_response(Error::CsrfFailed);
    }
    let client = client_info(req);
    let r = async {
        let (ctx, _) = signed_in(&svc, req).await?.ok_or(Error::InvalidToken(crate::error::TokenError::Malformed))?;
        let who = Enroller::Session(Box::new(ctx));
        let (p, codes) = svc
            .passkeys
            .finish_registration(&who, &call.ceremony, call.credential, call.name.as_deref(), client)
            .await?;
        Ok(serde_json::json!({"id": p.id, "name": p.name, "recovery_codes": codes}))
    };
    json_answer(r.await)
}
