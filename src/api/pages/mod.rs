//! Small hosted pages that make mailed links work without an application page of its own:
//! `/ui/verify`, `/ui/reset` and `/ui/forgot`. Plain HTML forms from templates (`templates/pages/`),
//! no script, a strict CSP, a double-submit CSRF cookie, English and Russian.

mod account;
mod admin;
mod sign_in;
mod templates;
mod text;

pub use sign_in::{authorize, end_session, forward_cookie_name};

use std::sync::Arc;

use minijinja::{
    context,
    value::{Value, merge_maps},
};
use poem::{
    Request, Response, Route, handler,
    http::{StatusCode, header},
    web::{Data, Form, Query},
};
use ring::digest;

use super::{cookies::read_cookie, problem::problem_response};
use crate::{
    error::Error,
    messages::pick_locale,
    security::random,
    service::{AuthService, ResetProof, VerifyProof},
};
use templates::STYLE;

pub fn routes() -> Route {
    Route::new()
        .at("/verify", poem::get(verify_page).post(verify_submit))
        .at("/reset", poem::get(reset_page).post(reset_submit))
        .at("/forgot", poem::get(forgot_page).post(forgot_submit))
        .at("/login", poem::get(sign_in::login_page).post(sign_in::login_submit))
        .at("/login/code", poem::post(sign_in::code_submit))
        .at("/login/with/:provider", poem::get(sign_in::login_with))
        .at("/login/upstream", poem::get(sign_in::upstream_return))
        .at("/consent", poem::post(sign_in::consent_submit))
        .at("/login/passkey", poem::post(sign_in::passkey_submit))
        .at("/recover", poem::get(recover_page))
        // Signing out of authd, and so of every application behind forward-auth.
        .at("/logout", poem::get(sign_in::end_session).post(sign_in::end_session))
        .at("/account", poem::get(account::account_page).post(account::account_submit))
        .at("/account/passkey", poem::post(account::passkey_begin))
        .at("/account/passkey/finish", poem::post(account::passkey_finish))
        .nest("/admin", admin::routes())
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
    /// Present when the box to unlink every identity is ticked.
    #[serde(default)]
    unlink_identities: Option<String>,
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

/// `GET /ui/recover?token=…`: the page of a recovery link. Opening it spends nothing; its
/// button (the passkey script) spends the link and enrols a passkey.
#[handler]
async fn recover_page(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<TokenQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    match svc.recovery.link_account(&q.token).await {
        Ok(Some(account)) => {
            page(&svc, StatusCode::OK, &lang, "pages/recover.html", context! { token => q.token, account })
        }
        Ok(None) => link_error(&svc, &lang, &Error::InvalidCode),
        Err(e) => link_error(&svc, &lang, &e),
    }
}

#[cfg(test)]
fn csp() -> String {
    csp_with(None)
}

/// The CSP, with `also` allowed as a form target: a form whose answer redirects to a client's
/// redirect URI must be allowed to go there.
fn csp_with(also: Option<&str>) -> String {
    /// The hashes of our one style and two scripts, made once.
    static HASHES: std::sync::LazyLock<(String, String, String, String)> = std::sync::LazyLock::new(|| {
        let scripts = (templates::SCRIPT, templates::PASSKEY_SCRIPT, templates::CONSOLE_SCRIPT);
        (sha256(STYLE), sha256(scripts.0), sha256(scripts.1), sha256(scripts.2))
    });
    let (style, script, passkey, console) = &*HASHES;
    let also = also.map(|a| format!(" {a}")).unwrap_or_default();
    // connect-src: the passkey script calls authd's own WebAuthn endpoints.
    format!(
        "default-src 'none'; style-src 'sha256-{style}'; script-src 'sha256-{script}' 'sha256-{passkey}' 'sha256-{console}'; connect-src 'self'; form-action 'self'{also}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Base64 of SHA-256, as a CSP source names a hash.
fn sha256(text: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest::digest(&digest::SHA256, text.as_bytes()))
}

/// The CSRF cookie: `__Host-` and `Secure` when the server is reached over https.
fn csrf_cookie_name(svc: &AuthService) -> &'static str {
    if svc.public_url().starts_with("https://") { "__Host-authd_ui_csrf" } else { "authd_ui_csrf" }
}

/// Page `name` with the page's own values.
fn page(svc: &AuthService, status: StatusCode, lang: &str, name: &str, values: Value) -> Response {
    respond(svc, status, lang, name, values, None)
}

/// A page with a form: a fresh token goes in its `csrf` field and in the cookie beside it.
fn form_page(svc: &AuthService, status: StatusCode, lang: &str, name: &str, values: Value) -> Response {
    let csrf = random::new_token();
    let values = merge_maps([context! { csrf => csrf.as_str() }, values]);
    respond(svc, status, lang, name, values, Some(&csrf))
}

fn respond(
    svc: &AuthService,
    status: StatusCode,
    lang: &str,
    name: &str,
    values: Value,
    csrf: Option<&str>,
) -> Response {
    respond_with(svc, status, lang, name, values, csrf, None)
}

fn respond_with(
    svc: &AuthService,
    status: StatusCode,
    lang: &str,
    name: &str,
    values: Value,
    csrf: Option<&str>,
    form_target: Option<&str>,
) -> Response {
    let html = match templates::render(name, lang, &svc.config().messages.product_name, values) {
        Ok(html) => html,
        Err(e) => return render_failed(name, &e),
    };
    let mut resp = Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, csp_with(form_target))
        .header(header::CACHE_CONTROL, "no-store")
        // The login page's address carries a sealed request: it goes nowhere else.
        .header(header::REFERRER_POLICY, "no-referrer")
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

/// A page that cannot be rendered is our fault: the generic 500 problem, the cause logged.
fn render_failed(name: &str, e: &minijinja::Error) -> Response {
    problem_response(Error::Internal(format!("page {name}: {e:#}")))
}

/// The double-submit check: the form's field equals the cookie set with the form.
fn csrf_ok(svc: &AuthService, req: &Request, field: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    let Some(cookie) = read_cookie(req, csrf_cookie_name(svc)) else { return false };
    !field.is_empty() && bool::from(cookie.as_bytes().ct_eq(field.as_bytes()))
}

/// What was wrong with a form, in the page's language and in words: never a field's name.
fn in_words(svc: &AuthService, lang: &str, fields: &[crate::error::FieldError]) -> String {
    let t = text::of(lang);
    let p = &svc.config().passwords;
    let said: Vec<String> = fields
        .iter()
        .map(|f| match f.code.as_str() {
            "too_short" => t.password_too_short.replace("{min}", &p.min_length.to_string()),
            "too_long" => t.password_too_long.replace("{max}", &p.max_length.to_string()),
            "too_common" => t.password_too_common.to_owned(),
            "contains_identifier" => t.password_has_identifier.to_owned(),
            _ if f.field.contains("password") => t.value_refused.to_owned(),
            // Addresses and names: the service's own sentence names what it is about.
            _ => f.message.clone(),
        })
        .collect();
    said.join(" ")
}

fn forbidden(svc: &AuthService, lang: &str) -> Response {
    let values = context! { message => text::of(lang).csrf_failed, start_over => false };
    page(svc, StatusCode::FORBIDDEN, lang, "pages/error.html", values)
}

fn link_error(svc: &AuthService, lang: &str, e: &Error) -> Response {
    let t = text::of(lang);
    let message = match e {
        Error::CodeExpired => t.link_expired,
        Error::InvalidCode => t.link_invalid,
        Error::RateLimited(_) | Error::TooManyAttempts(_) => t.too_many,
        Error::Conflict(_) => t.address_taken,
        _ => t.failed,
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
    page(svc, status, lang, "pages/error.html", context! { message, start_over => true })
}

#[handler]
async fn verify_page(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<TokenQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    form_page(&svc, StatusCode::OK, &lang, "pages/verify.html", context! { token => q.token })
}

#[handler]
async fn verify_submit(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<VerifyForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    match svc.verification.verify_contact(VerifyProof::Token(f.token)).await {
        Ok(_) => page(&svc, StatusCode::OK, &lang, "pages/verified.html", context! {}),
        Err(e) => link_error(&svc, &lang, &e),
    }
}

/// The reset form, with `problem` above it when the last try was refused.
fn reset_form(svc: &AuthService, lang: &str, token: &str, problem: Option<&str>, status: StatusCode) -> Response {
    form_page(svc, status, lang, "pages/reset.html", context! { token, problem })
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
        let mismatch = text::of(&lang).mismatch;
        return reset_form(&svc, &lang, &f.token, Some(mismatch), StatusCode::UNPROCESSABLE_ENTITY);
    }
    match svc
        .recovery
        .reset_password(ResetProof::Token(f.token.clone()), &f.password, f.unlink_identities.is_none())
        .await
    {
        Ok(()) => page(&svc, StatusCode::OK, &lang, "pages/reset_done.html", context! {}),
        Err(Error::Invalid(fields)) => {
            let why = in_words(&svc, &lang, &fields);
            reset_form(&svc, &lang, &f.token, Some(&why), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => link_error(&svc, &lang, &e),
    }
}

#[handler]
async fn forgot_page(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<LangQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    form_page(&svc, StatusCode::OK, &lang, "pages/forgot.html", context! {})
}

#[handler]
async fn forgot_submit(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<ForgotForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    if f.login.trim().is_empty() || f.login.len() > crate::security::identifiers::Email::MAX_LEN {
        return link_error(&svc, &lang, &Error::InvalidCode);
    }
    let accept = Some(lang.clone());
    match svc.recovery.forgot_password(&f.login, accept).await {
        Ok(()) => page(&svc, StatusCode::OK, &lang, "pages/forgot_sent.html", context! {}),
        Err(e) => link_error(&svc, &lang, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::LOCALES;

    /// A page, values for each of its variables, and its title.
    type Case = (&'static str, Value, fn(&text::Text) -> &'static str);

    fn pages() -> Vec<Case> {
        let shown: Vec<Case> = vec![
            ("pages/verify.html", context! { token => "tok", csrf => "c" }, |t| t.verify_title),
            ("pages/verified.html", context! {}, |t| t.verified_title),
            ("pages/reset.html", context! { token => "tok", csrf => "c", problem => None::<&str> }, |t| t.reset_title),
            ("pages/reset.html", context! { token => "tok", csrf => "c", problem => "Too short" }, |t| t.reset_title),
            ("pages/reset_done.html", context! {}, |t| t.reset_done_title),
            ("pages/forgot.html", context! { csrf => "c" }, |t| t.forgot_title),
            ("pages/forgot_sent.html", context! {}, |t| t.forgot_title),
            ("pages/error.html", context! { message => "No.", start_over => true }, |t| t.error_title),
            ("pages/error.html", context! { message => "No.", start_over => false }, |t| t.error_title),
            (
                "pages/login.html",
                context! { csrf => "c", request => "r", client => "Photos", problem => "No.", login_hint => "",
                challenge => "v1.x", difficulty => 16, providers => vec![context! { name => "google", display_name => "Google" }], request_q => "r", rd => "" },
                |t| t.sign_in_title,
            ),
            (
                "pages/login.html",
                context! { csrf => "c", request => "", client => None::<&str>, problem => None::<&str>, login_hint => "",
                challenge => None::<&str>, difficulty => 0, providers => Vec::<Value>::new(), rd => "" },
                |t| t.sign_in_title,
            ),
            (
                "pages/login_code.html",
                context! { csrf => "c", request => "r", mfa => "m", problem => None::<&str>, rd => "" },
                |t| t.code_title,
            ),
            (
                "pages/consent.html",
                context! { csrf => "c", request => "r", client => "Photos", scopes => crate::model::SCOPES },
                |t| t.consent_title,
            ),
            ("pages/signed_in.html", context! {}, |t| t.signed_in_title),
            (
                "pages/sign_out.html",
                context! { csrf => "c", carried => [("state", "s")], action => "/ui/logout" },
                |t| t.sign_out_title,
            ),
            ("pages/signed_out.html", context! {}, |t| t.signed_out_title),
            ("pages/recover.html", context! { token => "t", account => "a@example.com" }, |t| t.recover_title),
            (
                "pages/account.html",
                context! { csrf => "c", providers => vec![context! { name => "google", display_name => "Google" }],
                user => context! { display_name => "Ann", email => "a@example.com", email_verified => true, phone => "+14155550100",
                phone_verified => false, username => "ann" },
                has_password => true, totp => false,
                passkeys => vec![context! { id => "p", name => "Phone", backed_up => true, created => "2026", last_used => None::<&str> }],
                identities => vec![context! { id => "i", provider => "google", email => "a@example.com" }],
                sessions => vec![
                    context! { id => "s", device => "Firefox", ip => "::1", last_used => "2026", current => false },
                    context! { id => "t", device => "Chromium", ip => "::1", last_used => "2026", current => true },
                ],
                events => vec![context! { time => "2026", event => "user.login", ip => "::1" }],
                enrolment => context! { secret => "ABC", qr => "<svg></svg>" }, recovery_codes => vec!["abcd-efgh"],
                notice => "n", problem => "p", step_up => true },
                |t| t.account_title,
            ),
            (
                "pages/account.html",
                context! { csrf => "c", providers => Vec::<Value>::new(),
                user => context! { display_name => "Ann", email => None::<&str>, email_verified => false, phone => None::<&str>,
                phone_verified => false, username => None::<&str> },
                has_password => false, totp => true, passkeys => Vec::<Value>::new(), identities => Vec::<Value>::new(),
                sessions => Vec::<Value>::new(), events => Vec::<Value>::new(), enrolment => None::<Value>,
                recovery_codes => Vec::<String>::new(), notice => None::<&str>, problem => None::<&str>, step_up => false },
                |t| t.account_title,
            ),
            (
                "pages/account.html",
                context! { csrf => "c", providers => Vec::<Value>::new(),
                user => context! { display_name => "Ann", email => None::<&str>, email_verified => false, phone => None::<&str>,
                phone_verified => false, username => None::<&str> },
                has_password => false, totp => false, passkeys => Vec::<Value>::new(), identities => Vec::<Value>::new(),
                sessions => Vec::<Value>::new(), events => Vec::<Value>::new(), enrolment => None::<Value>,
                recovery_codes => Vec::<String>::new(), notice => None::<&str>, problem => None::<&str>, step_up => false },
                |t| t.account_title,
            ),
        ];
        shown.into_iter().chain(console_pages()).collect()
    }

    /// The console's pages, each with its frame, full and empty.
    fn console_pages() -> Vec<Case> {
        let frame = |all: bool| {
            context! { csrf => "c", viewer => "root@example.com", nav => context! { users => all, roles => all, clients => all, webhooks => all, audit => all, keys => all },
            notice => all.then_some("n"), problem => all.then_some("p"), step_up => all.then_some("/ui/login?rd=%2Fui%2Fadmin") }
        };
        let with = |all: bool, v: Value| merge_maps([frame(all), v]);
        let user = |totp: bool, disabled: bool| {
            context! { id => "u", login => "ann@example.com", email => "ann@example.com", phone => None::<&str>,
            username => None::<&str>, name => "Ann", status => "active", disabled, roles => vec!["user"],
            created => "2026", totp }
        };
        let can = |all: bool| context! { write => all, disable => all, revoke => all, audit => all };
        vec![
            (
                "pages/admin/home.html",
                with(
                    true,
                    context! { users => 1_000_000, sessions => 12, activity => context! { logins_hour => 3, failures_hour => 1,
                    logins_day => 40, failures_day => 7, chart => Value::from_safe_string("<svg></svg>".into()) } },
                ),
                |t| t.admin_title,
            ),
            (
                "pages/admin/home.html",
                with(false, context! { users => None::<u64>, sessions => None::<u64>, activity => None::<Value> }),
                |t| t.admin_title,
            ),
            (
                "pages/admin/users.html",
                with(
                    true,
                    context! { users => vec![context! { id => "u", login => "ann@example.com", status => "active",
                    roles => "user", created => "2026" }], next => "after=u", q => "ann", role => "", status => "active",
                    can_create => true },
                ),
                |t| t.admin_users,
            ),
            (
                "pages/admin/users.html",
                with(
                    false,
                    context! { users => Vec::<Value>::new(), next => None::<&str>, q => "", role => "", status => "",
                    can_create => false },
                ),
                |t| t.admin_users,
            ),
            (
                "pages/admin/user.html",
                with(
                    true,
                    context! { user => user(true, false), can => can(true),
                    sessions => vec![context! { id => "s", device => "Firefox", ip => "::1", last_used => "2026", client => None::<&str> }],
                    identities => vec![context! { id => "i", provider => "google", email => "ann@example.com" }],
                    passkeys => vec![context! { id => "k", name => "Phone", created => "2026" }],
                    events => vec![context! { time => "2026", event => "user.login", outcome => "success", actor => "user:u", ip => "::1" }],
                    link => "https://auth.example.com/ui/recover?token=x" },
                ),
                |t| t.admin_user,
            ),
            (
                "pages/admin/user.html",
                with(
                    false,
                    context! { user => user(false, false), can => can(false), sessions => Vec::<Value>::new(),
                    identities => Vec::<Value>::new(), passkeys => Vec::<Value>::new(), events => Vec::<Value>::new(),
                    link => None::<&str> },
                ),
                |t| t.admin_user,
            ),
            (
                "pages/admin/user.html",
                with(
                    false,
                    context! { user => user(false, true), can => can(true), sessions => Vec::<Value>::new(),
                    identities => Vec::<Value>::new(), passkeys => Vec::<Value>::new(), events => Vec::<Value>::new(),
                    link => None::<&str> },
                ),
                |t| t.admin_user,
            ),
            (
                "pages/admin/audit.html",
                with(
                    true,
                    context! { events => vec![context! { time => "2026", event => "user.login", outcome => "success",
                    actor => "user:u", user => "u", ip => "::1" }], older => "before=e", tail => "e", event => "", user => "", since => "" },
                ),
                |t| t.admin_audit,
            ),
            (
                "pages/admin/audit.html",
                with(
                    false,
                    context! { events => Vec::<Value>::new(), older => None::<&str>, tail => None::<&str>, event => "", user => "", since => "" },
                ),
                |t| t.admin_audit,
            ),
            (
                "pages/admin/keys.html",
                with(
                    true,
                    context! { keys => vec![context! { kid => "k1", alg => "EdDSA", state => "active", created => "2026",
                    retire_at => None::<&str> }], can_rotate => true },
                ),
                |t| t.admin_keys,
            ),
            (
                "pages/admin/keys.html",
                with(false, context! { keys => Vec::<Value>::new(), can_rotate => false }),
                |t| t.admin_keys,
            ),
            (
                "pages/admin/webhooks.html",
                with(
                    true,
                    context! { endpoints => vec![
                        context! { id => None::<&str>, url => "https://hooks.example/a", events => "user.registered" },
                        context! { id => "w", url => "https://hooks.example/b", events => "login.failed" },
                    ], counts => context! { pending => 1, delivered => 2, failed => 1 },
                    troubled => vec![context! { id => "d", url => "https://hooks.example/b", event => "login.failed", attempts => 8,
                    failed => true, state => "failed", error => "timeout" }], secret => "whsec_x", can_write => true },
                ),
                |t| t.admin_webhooks,
            ),
            (
                "pages/admin/webhooks.html",
                with(
                    false,
                    context! { endpoints => Vec::<Value>::new(), counts => None::<Value>, troubled => Vec::<Value>::new(),
                    secret => None::<&str>, can_write => false },
                ),
                |t| t.admin_webhooks,
            ),
            (
                "pages/admin/roles.html",
                with(
                    true,
                    context! { roles => vec![
                        context! { name => "helpdesk", permissions => vec!["users:read"], builtin => false, require_mfa => true, holders => "role=helpdesk" },
                        context! { name => "user", permissions => Vec::<String>::new(), builtin => true, require_mfa => false, holders => "role=user" },
                    ], can_write => true, can_see_users => true },
                ),
                |t| t.admin_roles,
            ),
            (
                "pages/admin/roles.html",
                with(false, context! { roles => Vec::<Value>::new(), can_write => false, can_see_users => false }),
                |t| t.admin_roles,
            ),
            (
                "pages/admin/clients.html",
                with(
                    true,
                    context! { clients => vec![
                        context! { id => "c1", name => "Photos", roles => "user", redirect_uris => "https://photos.example/cb",
                        post_logout_redirect_uris => "", public => false, trusted => true, require_par => true, created => "2026" },
                        context! { id => "c2", name => "App", roles => "user", redirect_uris => "https://app.example/cb",
                        post_logout_redirect_uris => "", public => true, trusted => false, require_par => false, created => "2026" },
                    ], secret => context! { id => "c1", secret => "s" }, can_write => true },
                ),
                |t| t.admin_clients,
            ),
            (
                "pages/admin/clients.html",
                with(
                    false,
                    context! { clients => vec![
                        context! { id => "c1", name => "Photos", roles => "user", redirect_uris => "https://photos.example/cb",
                        post_logout_redirect_uris => "", public => false, trusted => false, require_par => false, created => "2026" },
                    ], secret => None::<Value>, can_write => false },
                ),
                |t| t.admin_clients,
            ),
        ]
    }

    #[test]
    fn every_page_renders_in_every_language_and_shows_every_string() {
        for lang in LOCALES {
            let t = text::of(lang);
            let mut all = String::new();
            for (name, values, title) in pages() {
                let html = templates::render(name, lang, "Example", values).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                assert!(html.starts_with(&format!("<!doctype html>\n<html lang=\"{lang}\">")), "{name} {lang}: {html}");
                assert!(html.contains(&format!("<title>{} · Example</title>", title(t))), "{name} {lang}: {html}");
                assert!(html.contains(&format!("<h1>{}</h1>", title(t))), "{name} {lang}: {html}");
                // The proof-of-work script only where one is due; the passkey script only where a
                // passkey is asked for.
                let scripts = html.matches("<script>").count();
                let due = usize::from(html.contains("name=\"challenge\""))
                    + usize::from(
                        html.contains("id=\"passkey-form\"")
                            || html.contains("id=\"recover\"")
                            || html.contains("id=\"passkeys\""),
                    )
                    + usize::from(html.contains("id=\"audit-tail\""));
                assert_eq!(scripts, due, "{name} {lang}: {html}");
                assert!(!html.contains("\n\n"), "{name} {lang}: {html}");
                all.push_str(&html);
            }
            for name in text::NAMES {
                let s = t.get(name).unwrap();
                // Errors are picked in code; the rest must appear in a page.
                let picked = [
                    "mismatch",
                    "link_invalid",
                    "link_expired",
                    "too_many",
                    "address_taken",
                    "failed",
                    "csrf_failed",
                    "wrong_password",
                    "wrong_code",
                    "password_too_short",
                    "password_too_long",
                    "password_too_common",
                    "password_has_identifier",
                    "value_refused",
                    "unknown_client",
                    "request_stale",
                    "bad_logout",
                    "cannot_sign_in",
                    "account_disabled",
                    "challenge_due",
                    "upstream_failed",
                    "upstream_not_fresh",
                    "done",
                    "step_up_needed",
                    "last_way_in",
                    "wrong_current_password",
                    "linked",
                    "link_failed",
                    "admin_no_access",
                    "admin_refused",
                    "admin_not_found",
                    "admin_done",
                    "admin_chart",
                ];
                assert!(picked.contains(name) || all.contains(s), "{lang}: `{name}` is shown on no page");
            }
        }
    }

    #[test]
    fn values_from_the_request_are_escaped_on_every_page() {
        let evil = "\"><script>alert('x')</script>&";
        let escaped = "&quot;&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt;&amp;";
        for (name, values) in [
            ("pages/verify.html", context! { token => evil, csrf => evil }),
            ("pages/reset.html", context! { token => evil, csrf => evil, problem => evil }),
            ("pages/forgot.html", context! { csrf => evil }),
            ("pages/error.html", context! { message => evil, start_over => true }),
            (
                "pages/login.html",
                context! { csrf => evil, request => evil, client => evil, problem => evil, login_hint => evil,
                challenge => evil, difficulty => 16, providers => vec![context! { name => evil, display_name => evil }], request_q => evil, rd => evil },
            ),
            (
                "pages/login_code.html",
                context! { csrf => evil, request => evil, mfa => evil, problem => evil, rd => evil },
            ),
            ("pages/consent.html", context! { csrf => evil, request => evil, client => evil, scopes => ["openid"] }),
        ] {
            let html = templates::render(name, "en", evil, values).unwrap();
            // No script but ours.
            for body in html.split("<script>").skip(1) {
                let body = body.split_once("</script>").map(|(b, _)| b);
                assert!(body == Some(templates::SCRIPT) || body == Some(templates::PASSKEY_SCRIPT), "{name}: {html}");
            }
            assert!(html.contains(&format!(" · {escaped}</title>")), "{name}: {html}");
            if name != "pages/error.html" {
                assert!(html.contains(&format!("name=\"csrf\" value=\"{escaped}\"")), "{name}: {html}");
            }
        }
        let html =
            templates::render("pages/reset.html", "en", "x", context! { token => evil, csrf => "c", problem => evil })
                .unwrap();
        assert!(html.contains(&format!("name=\"token\" value=\"{escaped}\"")), "{html}");
        assert!(html.contains(&format!("<strong>{escaped}</strong>")), "{html}");
    }

    #[test]
    fn the_script_served_is_the_one_the_csp_allows() {
        let values = context! { csrf => "c", request => "", client => None::<&str>, problem => None::<&str>,
        login_hint => "", challenge => "v1.x", difficulty => 16, providers => Vec::<Value>::new(), rd => "" };
        let html = templates::render("pages/login.html", "en", "x", values).unwrap();
        let served: Vec<&str> =
            html.split("<script>").skip(1).filter_map(|s| s.split_once("</script>").map(|(s, _)| s)).collect();
        assert_eq!(served, [templates::SCRIPT, templates::PASSKEY_SCRIPT]);
        let allowed = csp();
        for script in served {
            let hash = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                digest::digest(&digest::SHA256, script.as_bytes()),
            );
            assert!(allowed.contains(&format!("'sha256-{hash}'")), "{allowed}");
        }
        assert!(!allowed.contains("unsafe-inline"), "{allowed}");
    }

    #[test]
    fn the_style_served_is_the_one_the_csp_allows() {
        let html = templates::render("pages/forgot.html", "en", "x", context! { csrf => "c" }).unwrap();
        let served = html.split_once("<style>").and_then(|(_, rest)| rest.split_once("</style>")).unwrap().0;
        assert_eq!(served, STYLE);
        let hash = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            digest::digest(&digest::SHA256, served.as_bytes()),
        );
        assert!(csp().contains(&format!("style-src 'sha256-{hash}';")), "{}", csp());
    }

    #[tokio::test]
    async fn a_page_that_cannot_be_rendered_is_a_500_that_tells_nothing() {
        // Strict: a value the page needs but was not given fails rather than printing nothing.
        let e = templates::render("pages/verify.html", "en", "x", context! { csrf => "c" }).unwrap_err();
        let resp = render_failed("pages/verify.html", &e);
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.into_body().into_string().await.unwrap();
        assert!(!body.contains("verify") && !body.contains("token"), "{body}");
        assert!(body.contains("internal_error"), "{body}");
    }
}
