//! Small hosted pages that make mailed links work without an application page of its own:
//! `/ui/verify`, `/ui/reset` and `/ui/forgot`. Plain HTML forms, no script, a strict CSP, a
//! double-submit CSRF cookie, English and Russian.

mod text;

use std::sync::Arc;

use poem::{
    Request, Response, Route, handler,
    http::{StatusCode, header},
    web::{Data, Form, Query},
};
use ring::digest;

use super::cookies::read_cookie;
use crate::{
    error::Error,
    messages::pick_locale,
    security::random,
    service::{AuthService, ResetProof, VerifyProof},
};
use text::{Key, t};

/// The pages' only style, allowed by its hash.
const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}\
label{display:block;margin-top:1rem;font-weight:600}\
input{display:block;width:100%;padding:.5rem;margin-top:.25rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}\
button:focus,input:focus,a:focus{outline:3px solid #1a56db;outline-offset:2px}\
.note{padding:.75rem;border:2px solid currentColor;margin-top:1rem}";

pub fn routes() -> Route {
    Route::new()
        .at("/verify", poem::get(verify_page).post(verify_submit))
        .at("/reset", poem::get(reset_page).post(reset_submit))
        .at("/forgot", poem::get(forgot_page).post(forgot_submit))
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
    #[serde(default)]
    lang: Option<String>,
}

#[derive(serde::Deserialize)]
struct LangQuery {
    #[serde(default)]
    lang: Option<String>,
}

#[derive(serde::Deserialize)]
struct VerifyForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
}

#[derive(serde::Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
}

#[derive(serde::Deserialize)]
struct ForgotForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
}

fn locale(svc: &AuthService, req: &Request, lang: Option<&str>) -> String {
    pick_locale(lang, req.header("accept-language"), &svc.config().messages.default_locale)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#x27;")
}

fn csp() -> String {
    let hash = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        digest::digest(&digest::SHA256, STYLE.as_bytes()),
    );
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The CSRF cookie: `__Host-` and `Secure` when the server is reached over https.
fn csrf_cookie_name(svc: &AuthService) -> &'static str {
    if svc.public_url().starts_with("https://") { "__Host-authd_ui_csrf" } else { "authd_ui_csrf" }
}

fn page(svc: &AuthService, status: StatusCode, lang: &str, title: &str, body: &str, csrf: Option<&str>) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · {product}</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title),
        product = esc(&svc.config().messages.product_name),
    );
    let mut resp = Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, csp())
        .header(header::CACHE_CONTROL, "no-store")
        .body(html);
    if let Some(value) = csrf {
        let secure = if svc.public_url().starts_with("https://") { "; Secure" } else { "" };
        let cookie =
            format!("{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600{secure}", csrf_cookie_name(svc));
        if let Ok(v) = poem::http::HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn note(text: &str) -> String {
    format!("<p class=\"note\" role=\"status\">{}</p>", esc(text))
}

fn alert(text: &str) -> String {
    format!("<p class=\"note\" role=\"alert\"><strong>{}</strong></p>", esc(text))
}

/// The double-submit check: the form's field equals the cookie set with the form.
fn csrf_ok(svc: &AuthService, req: &Request, field: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    let Some(cookie) = read_cookie(req, csrf_cookie_name(svc)) else { return false };
    !field.is_empty() && bool::from(cookie.as_bytes().ct_eq(field.as_bytes()))
}

fn forbidden(svc: &AuthService, lang: &str) -> Response {
    page(svc, StatusCode::FORBIDDEN, lang, t(lang, Key::ErrorTitle), &alert(t(lang, Key::CsrfFailed)), None)
}

fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", esc(value))
}

fn link_error(svc: &AuthService, lang: &str, e: &Error) -> Response {
    let text = match e {
        Error::CodeExpired => t(lang, Key::LinkExpired),
        Error::InvalidCode => t(lang, Key::LinkInvalid),
        Error::RateLimited(_) | Error::TooManyAttempts(_) => t(lang, Key::TooMany),
        Error::Conflict(_) => t(lang, Key::AddressTaken),
        _ => t(lang, Key::Failed),
    };
    let status = match e {
        Error::RateLimited(_) | Error::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::InvalidCode | Error::CodeExpired => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "hosted page failed");
    }
    let body = format!("{}<p><a href=\"forgot?lang={lang}\">{}</a></p>", alert(text), esc(t(lang, Key::StartOver)));
    page(svc, status, lang, t(lang, Key::ErrorTitle), &body, None)
}

#[handler]
async fn verify_page(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<TokenQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let csrf = random::new_token();
    let body = format!(
        "<p>{}</p><form method=\"post\" action=\"verify\">{}{}{}<button type=\"submit\">{}</button></form>",
        esc(t(&lang, Key::VerifyIntro)),
        hidden("token", &q.token),
        hidden("csrf", &csrf),
        hidden("lang", &lang),
        esc(t(&lang, Key::VerifyButton)),
    );
    page(&svc, StatusCode::OK, &lang, t(&lang, Key::VerifyTitle), &body, Some(&csrf))
}

#[handler]
async fn verify_submit(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<VerifyForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    match svc.verify_contact(VerifyProof::Token(f.token)).await {
        Ok(_) => page(&svc, StatusCode::OK, &lang, t(&lang, Key::VerifiedTitle), &note(t(&lang, Key::Verified)), None),
        Err(e) => link_error(&svc, &lang, &e),
    }
}

fn reset_form(svc: &AuthService, lang: &str, token: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let csrf = random::new_token();
    let body = format!(
        "{}<p>{}</p><form method=\"post\" action=\"reset\">{}{}{}\
         <label for=\"password\">{}</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"256\">\
         <label for=\"password_again\">{}</label>\
         <input id=\"password_again\" name=\"password_again\" type=\"password\" autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"256\">\
         <button type=\"submit\">{}</button></form>",
        problem.map(alert).unwrap_or_default(),
        esc(t(lang, Key::ResetIntro)),
        hidden("token", token),
        hidden("csrf", &csrf),
        hidden("lang", lang),
        esc(t(lang, Key::NewPassword)),
        esc(t(lang, Key::NewPasswordAgain)),
        esc(t(lang, Key::ResetButton)),
    );
    page(svc, status, lang, t(lang, Key::ResetTitle), &body, Some(&csrf))
}

#[handler]
async fn reset_page(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<TokenQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    reset_form(&svc, &lang, &q.token, None, StatusCode::OK)
}

#[handler]
async fn reset_submit(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<ResetForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    if f.password != f.password_again {
        return reset_form(&svc, &lang, &f.token, Some(t(&lang, Key::Mismatch)), StatusCode::UNPROCESSABLE_ENTITY);
    }
    match svc.reset_password(ResetProof::Token(f.token.clone()), &f.password).await {
        Ok(()) => {
            page(&svc, StatusCode::OK, &lang, t(&lang, Key::ResetDoneTitle), &note(t(&lang, Key::ResetDone)), None)
        }
        Err(Error::Invalid(fields)) => {
            let why = fields.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; ");
            reset_form(&svc, &lang, &f.token, Some(&why), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => link_error(&svc, &lang, &e),
    }
}

#[handler]
async fn forgot_page(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<LangQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let csrf = random::new_token();
    let body = format!(
        "<p>{}</p><form method=\"post\" action=\"forgot\">{}{}\
         <label for=\"login\">{}</label>\
         <input id=\"login\" name=\"login\" type=\"text\" autocomplete=\"username\" required maxlength=\"254\">\
         <button type=\"submit\">{}</button></form>",
        esc(t(&lang, Key::ForgotIntro)),
        hidden("csrf", &csrf),
        hidden("lang", &lang),
        esc(t(&lang, Key::Login)),
        esc(t(&lang, Key::ForgotButton)),
    );
    page(&svc, StatusCode::OK, &lang, t(&lang, Key::ForgotTitle), &body, Some(&csrf))
}

#[handler]
async fn forgot_submit(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<ForgotForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    if f.login.trim().is_empty() || f.login.len() > 254 {
        return link_error(&svc, &lang, &Error::InvalidCode);
    }
    let accept = Some(lang.clone());
    match svc.forgot_password(Arc::clone(&svc), &f.login, accept).await {
        Ok(()) => page(&svc, StatusCode::OK, &lang, t(&lang, Key::ForgotTitle), &note(t(&lang, Key::ForgotSent)), None),
        Err(e) => link_error(&svc, &lang, &e),
    }
}
