//! The hosted login of the OpenID Provider: the authorization and end-session endpoints (they
//! answer browsers with redirects and pages), the login form, its code step, and consent. The
//! browser session is authd's own cookie on authd's host, `HttpOnly` and `SameSite=Lax`.

use std::sync::Arc;

use minijinja::{context, value::merge_maps};
use poem::{
    Request, Response, handler,
    http::{HeaderValue, Method, StatusCode, header},
    web::{Data, Form, Query},
};

use super::{
    csrf_ok, forbidden, locale, page, respond_with,
    text::{self, Text},
};
use crate::{
    api::{client::client_info, cookies::read_cookie},
    error::Error,
    security::random,
    service::{
        AuthService, Authorized, ChallengeOffer, ChallengeSolution, LoggedOut, Pending, Refused, SignIn, params_of,
    },
};

/// The browser session's cookie, for authd's own pages: `__Host-` and `Secure` when authd is
/// reached over https.
pub fn session_cookie_name(svc: &AuthService) -> &'static str {
    if svc.public_url().starts_with("https://") { "__Host-authd_session" } else { "authd_session" }
}

/// The forward-auth cookie: the same session, sealed for `/v1/authz/*` alone, so that the
/// applications it is shared with (`forward_auth.cookie_domain`) cannot use it on authd's pages.
/// `__Host-` forbids a Domain, hence `__Secure-`.
pub fn forward_cookie_name(svc: &AuthService) -> &'static str {
    if svc.public_url().starts_with("https://") { "__Secure-authd_forward" } else { "authd_forward" }
}

/// The session's cookies (empty `value`: their removal): the session itself, host-only, and
/// where forward-auth rules exist, the forward-auth cookie over `forward_auth.cookie_domain`.
fn session_cookies(svc: &AuthService, value: &str, max_age: u64) -> Vec<HeaderValue> {
    let secure = if svc.public_url().starts_with("https://") { "; Secure" } else { "" };
    let mut cookies = vec![format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        session_cookie_name(svc)
    )];
    let fa = &svc.config().forward_auth;
    if !fa.rules.is_empty() {
        let forward = match value {
            "" => String::new(),
            v => svc.provider.forward_cookie(v).unwrap_or_default(),
        };
        let domain = fa.cookie_domain.as_ref().map(|d| format!("; Domain={}", d.trim_start_matches('.')));
        cookies.push(format!(
            "{}={forward}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}{}",
            forward_cookie_name(svc),
            domain.unwrap_or_default()
        ));
    }
    cookies.iter().filter_map(|c| HeaderValue::from_str(c).ok()).collect()
}

fn with_cookie(mut resp: Response, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// The origin of where a request's answer will redirect, for the page's `form-action`.
fn origin_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    match u.origin() {
        url::Origin::Tuple(..) => Some(u.origin().ascii_serialization()),
        url::Origin::Opaque(_) => Some(format!("{}:", u.scheme())),
    }
}

/// A page explaining why a request cannot go on; never a redirect.
fn refused_page(svc: &AuthService, lang: &str, r: &Refused) -> Response {
    let t = text::of(lang);
    let (status, message) = match r {
        Refused::UnknownClient | Refused::BadRedirectUri => (StatusCode::BAD_REQUEST, t.unknown_client),
        Refused::BadRequestUri | Refused::Stale => (StatusCode::BAD_REQUEST, t.request_stale),
        Refused::BadHint => (StatusCode::BAD_REQUEST, t.bad_logout),
        Refused::Failed(e) => return failed_page(svc, lang, e),
    };
    page(svc, status, lang, "pages/error.html", context! { message, start_over => false })
}

fn failed_page(svc: &AuthService, lang: &str, e: &Error) -> Response {
    let t = text::of(lang);
    let (status, message) = match e {
        Error::RateLimited(_) | Error::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, t.too_many),
        Error::StorageUnavailable(_) | Error::Busy => (StatusCode::SERVICE_UNAVAILABLE, t.failed),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, t.failed),
    };
    tracing::error!(error = %e, "hosted login failed");
    page(svc, status, lang, "pages/error.html", context! { message, start_over => false })
}

/// What a decision on an authorization request looks like to the browser.
fn answer(svc: &AuthService, lang: &str, outcome: Result<Authorized, Refused>, cookie: Vec<HeaderValue>) -> Response {
    let resp = match outcome {
        Ok(Authorized::Redirect(to)) => see_other(&to),
        Ok(Authorized::Login(p)) => {
            let mut to = url::Url::parse("http://x/ui/login").ok();
            if let Some(u) = to.as_mut() {
                u.query_pairs_mut().append_pair("request", &p.request).append_pair("lang", lang);
            }
            let query = to.and_then(|u| u.query().map(str::to_owned)).unwrap_or_default();
            see_other(&format!("/ui/login?{query}"))
        }
        Ok(Authorized::Consent(p)) => consent_page(svc, lang, &p),
        Err(r) => refused_page(svc, lang, &r),
    };
    with_cookie(resp, cookie)
}

/// The language of a page: `lang`, else `ui_locales`, else the browser's.
fn lang_of(svc: &AuthService, req: &Request, lang: Option<&str>, ui_locales: Option<&str>) -> String {
    let asked = lang.filter(|l| !l.is_empty()).or_else(|| ui_locales.and_then(|u| u.split(' ').next()));
    locale(svc, req, asked)
}

/// Where a form's answer may redirect, for its `form-action`: a pending request's redirect URI,
/// else `rd` where the forward-auth rules cover it.
async fn target_of(svc: &AuthService, request: &str, rd: &str) -> Option<String> {
    if request.is_empty() {
        return svc.forward_auth.return_to(rd).as_deref().and_then(origin_of);
    }
    svc.provider.redirect_uri_of(request).await.as_deref().and_then(origin_of)
}

fn consent_page(svc: &AuthService, lang: &str, p: &Pending) -> Response {
    let csrf = random::new_token();
    let values = context! { csrf => csrf.as_str(), request => p.request.as_str(), client => p.client_name.as_str(),
    scopes => p.scopes.clone() };
    let target = p.redirect_uri.as_deref().and_then(origin_of);
    respond_with(svc, StatusCode::OK, lang, "pages/consent.html", values, Some(&csrf), target.as_deref())
}

/// What the login form shows besides its fields.
#[derive(Default)]
struct LoginPage<'a> {
    client: Option<&'a str>,
    login_hint: Option<&'a str>,
    problem: Option<&'a str>,
    /// Where the answer may redirect, for `form-action`.
    target: Option<&'a str>,
    /// A proof of work due: the challenge and its difficulty.
    challenge: Option<(String, u8)>,
    /// Where to go back to after signing in (forward-auth), when no authorization request is
    /// pending.
    rd: &'a str,
}

fn login_form(svc: &AuthService, status: StatusCode, lang: &str, request: &str, p: LoginPage<'_>) -> Response {
    let csrf = random::new_token();
    let (challenge, difficulty) = p.challenge.map_or((None, 0), |(c, d)| (Some(c), d));
    let providers: Vec<minijinja::Value> = svc
        .upstream
        .providers()
        .into_iter()
        .map(|p| context! { name => p.name, display_name => p.display_name })
        .collect();
    let values = merge_maps([
        context! { csrf => csrf.as_str(), request, client => p.client, problem => p.problem },
        context! { login_hint => p.login_hint.unwrap_or_default(), challenge, difficulty, providers, rd => p.rd,
        request_q => url::form_urlencoded::byte_serialize(request.as_bytes()).collect::<String>() },
    ]);
    let target = p.target;
    respond_with(svc, status, lang, "pages/login.html", values, Some(&csrf), target)
}

/// `GET|POST /oauth2/authorize` (OIDC Core §3.1.2).
#[handler]
pub async fn authorize(svc: Data<&Arc<AuthService>>, req: &Request, body: poem::Body) -> Response {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    if req.method() == Method::POST {
        let Ok(bytes) = body.into_bytes().await else {
            return refused_page(&svc, "en", &Refused::Stale);
        };
        pairs.extend(url::form_urlencoded::parse(&bytes).into_owned());
    }
    let params = params_of(pairs);
    let (lang_param, ui_locales) = match &params {
        Ok(p) => (p.get("lang").cloned(), p.get("ui_locales").cloned()),
        Err(_) => (None, None),
    };
    let lang = lang_of(&svc, req, lang_param.as_deref(), ui_locales.as_deref());
    let cookie = read_cookie(req, session_cookie_name(&svc));
    let outcome = svc.provider.authorize(params, cookie.as_deref()).await;
    answer(&svc, &lang, outcome, Vec::new())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct LoginQuery {
    request: String,
    lang: Option<String>,
    /// Back to this address after signing in (forward-auth).
    rd: String,
}

/// `GET /ui/login`: the form, for a pending authorization request or on its own.
#[handler]
pub(super) async fn login_page(svc: Data<&Arc<AuthService>>, req: &Request, Query(q): Query<LoginQuery>) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    if q.request.is_empty() {
        let target = target_of(&svc, "", &q.rd).await;
        let page = LoginPage { rd: &q.rd, target: target.as_deref(), ..LoginPage::default() };
        return login_form(&svc, StatusCode::OK, &lang, "", page);
    }
    match svc.provider.pending_of(&q.request).await {
        Ok(p) => {
            let target = p.redirect_uri.as_deref().and_then(origin_of);
            let page = LoginPage {
                client: Some(&p.client_name),
                login_hint: p.login_hint.as_deref(),
                target: target.as_deref(),
                ..LoginPage::default()
            };
            login_form(&svc, StatusCode::OK, &lang, &p.request, page)
        }
        Err(r) => refused_page(&svc, &lang, &r),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct LoginForm {
    login: String,
    password: String,
    csrf: String,
    request: String,
    lang: String,
    rd: String,
    /// A proof of work and its solution, when one was due.
    challenge: String,
    nonce: String,
}

/// Signed in: the cookie, then the pending request goes on, or back to `rd` where the rules
/// cover it (anything else: a page says so, never a redirect elsewhere).
async fn signed_in(svc: &AuthService, lang: &str, request: &str, rd: &str, cookie: &str) -> Response {
    let max_age = svc.config().tokens.refresh_ttl.as_secs();
    let set = session_cookies(svc, cookie, max_age);
    if let Some(to) = svc.forward_auth.return_to(rd).filter(|_| request.is_empty()) {
        return with_cookie(see_other(&to), set);
    }
    if let Some(to) = local_return(rd).filter(|_| request.is_empty()) {
        return with_cookie(see_other(to), set);
    }
    if request.is_empty() {
        let resp = page(svc, StatusCode::OK, lang, "pages/signed_in.html", context! {});
        return with_cookie(resp, set);
    }
    let outcome = svc.provider.resume(request, Some(cookie)).await;
    answer(svc, lang, outcome, set)
}

/// A page of authd's own to go back to after signing in (the console sends a user to sign in
/// again before a destructive action): a path under `/ui/admin` or `/ui/account`, nothing that
/// could lead off this origin.
fn local_return(rd: &str) -> Option<&str> {
    let own = rd.starts_with("/ui/admin") || rd.starts_with("/ui/account");
    // No `%`: an encoded dot or slash would be resolved by the browser after this check.
    (own && !rd.contains(['\\', '\r', '\n', '%']) && !rd.contains("//") && !rd.contains("/.")).then_some(rd)
}

/// Why a sign-in was refused, in the user's words, with its status.
fn refusal_text(t: &'static Text, e: &Error) -> Option<(StatusCode, &'static str)> {
    Some(match e {
        Error::InvalidCredentials => (StatusCode::UNAUTHORIZED, t.wrong_password),
        Error::AccountDisabled => (StatusCode::FORBIDDEN, t.account_disabled),
        Error::RateLimited(_) | Error::TooManyAttempts(_) | Error::ChallengeRequired | Error::ChallengeFailed(_) => {
            (StatusCode::TOO_MANY_REQUESTS, t.too_many)
        }
        Error::MfaEnrolmentRequired(_) | Error::EmailUnverified | Error::PhoneUnverified | Error::PasskeyRequired => {
            (StatusCode::FORBIDDEN, t.cannot_sign_in)
        }
        _ => return None,
    })
}

/// `POST /ui/login`.
#[handler]
pub(super) async fn login_submit(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<LoginForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    let target = target_of(&svc, &f.request, &f.rd).await;
    let solution = (!f.challenge.is_empty() && !f.nonce.is_empty())
        .then(|| ChallengeSolution::Pow { challenge: f.challenge.clone(), nonce: f.nonce.clone() });
    match svc.provider.sign_in(&f.login, &f.password, client_info(req), solution).await {
        Ok(SignIn::Session(cookie)) => signed_in(&svc, &lang, &f.request, &f.rd, &cookie).await,
        Ok(SignIn::SecondFactor(mfa)) => {
            code_form(&svc, StatusCode::OK, &lang, (&f.request, &f.rd), &mfa, None, target.as_deref())
        }
        Err(e) => {
            let t = text::of(&lang);
            // Past repeated failures a solved proof of work is due. The form shown again after
            // any failed try carries one, so that the browser has it solved by the try that
            // needs it; where none is due yet, the server ignores it.
            let due = matches!(e, Error::ChallengeRequired | Error::ChallengeFailed(_));
            let challenge = match (due || matches!(e, Error::InvalidCredentials), svc.new_challenge()) {
                (true, ChallengeOffer::Pow(c)) => Some((c.challenge, c.difficulty)),
                _ => None,
            };
            let refusal = if due && challenge.is_some() {
                Some((StatusCode::UNAUTHORIZED, t.challenge_due))
            } else {
                refusal_text(t, &e)
            };
            match refusal {
                Some((status, problem)) => {
                    let client = match f.request.is_empty() {
                        true => None,
                        false => svc.provider.pending_of(&f.request).await.ok().map(|p| p.client_name),
                    };
                    let page = LoginPage {
                        client: client.as_deref(),
                        login_hint: Some(&f.login),
                        problem: Some(problem),
                        target: target.as_deref(),
                        challenge,
                        rd: &f.rd,
                    };
                    login_form(&svc, status, &lang, &f.request, page)
                }
                None => failed_page(&svc, &lang, &e),
            }
        }
    }
}

/// The cookie that keeps the hosted page's PKCE verifier and pending request while the browser
/// is at a provider.
fn upstream_cookie_name(svc: &AuthService) -> &'static str {
    if svc.public_url().starts_with("https://") { "__Host-authd_ui_upstream" } else { "authd_ui_upstream" }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct WithQuery {
    request: String,
    lang: Option<String>,
}

/// `GET /ui/login/with/{provider}`: off to a provider, to come back to `/ui/login/upstream`.
/// A link, not a form: a form's answer may not redirect to the provider under the page's
/// `form-action`. Started from another site it ends where a plain authorization link would:
/// the consent page of a client that is not trusted.
#[handler]
pub(super) async fn login_with(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    provider: poem::web::Path<String>,
    Query(q): Query<WithQuery>,
) -> Response {
    let lang = locale(&svc, req, q.lang.as_deref());
    let pending = match q.request.is_empty() {
        true => None,
        false => match svc.provider.pending_of(&q.request).await {
            Ok(p) => Some(p),
            Err(r) => return refused_page(&svc, &lang, &r),
        },
    };
    let verifier = random::new_token();
    let challenge = crate::upstream::Pkce::s256(&verifier);
    let demand = pending.as_ref().map(|p| crate::service::FreshLogin { after: p.fresh_after, prompt: p.prompt_login });
    let (go, started) = match svc.upstream.hosted_start(&provider.0, challenge, demand.unwrap_or_default()).await {
        Ok(v) => v,
        Err(Error::NotFound(_)) => return refused_page(&svc, &lang, &Refused::UnknownClient),
        // A provider that cannot say when the user signed in cannot give a fresh login.
        Err(Error::StepUpRequired) => {
            let target = target_of(&svc, &q.request, "").await;
            let p = pending.as_ref();
            let page = LoginPage {
                problem: Some(text::of(&lang).upstream_not_fresh),
                client: p.map(|p| p.client_name.as_str()),
                login_hint: p.and_then(|p| p.login_hint.as_deref()),
                target: target.as_deref(),
                ..LoginPage::default()
            };
            return login_form(&svc, StatusCode::BAD_REQUEST, &lang, &q.request, page);
        }
        Err(e) => return failed_page(&svc, &lang, &e),
    };
    let kept = match svc.provider.seal_upstream(&verifier, &q.request) {
        Ok(k) => k,
        Err(e) => return failed_page(&svc, &lang, &e),
    };
    let secure = if svc.public_url().starts_with("https://") { "; Secure" } else { "" };
    let mine = format!("{}={kept}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600{secure}", upstream_cookie_name(&svc));
    let mut resp = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, go.location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish();
    for c in [crate::api::upstream::login_cookie(&svc, &started, 600), mine] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct UpstreamReturn {
    code: Option<String>,
    error: Option<String>,
}

/// `GET /ui/login/upstream`: back from a provider, the login is traded here, as an application
/// would, with the verifier only this browser holds.
#[handler]
pub(super) async fn upstream_return(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    Query(q): Query<UpstreamReturn>,
) -> Response {
    let lang = locale(&svc, req, None);
    let Some((verifier, request)) =
        read_cookie(req, upstream_cookie_name(&svc)).and_then(|c| svc.provider.open_upstream(&c))
    else {
        return refused_page(&svc, &lang, &Refused::Stale);
    };
    let secure = if svc.public_url().starts_with("https://") { "; Secure" } else { "" };
    let clear = HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        upstream_cookie_name(&svc)
    ))
    .ok();
    // The form shown again keeps the request's client and where its answer may go.
    let target = target_of(&svc, &request, "").await;
    let client = match request.is_empty() {
        true => None,
        false => svc.provider.pending_of(&request).await.ok().map(|p| p.client_name),
    };
    let again = |status: StatusCode, problem: &str| {
        let page = LoginPage {
            problem: Some(problem),
            client: client.as_deref(),
            target: target.as_deref(),
            ..LoginPage::default()
        };
        login_form(&svc, status, &lang, &request, page)
    };
    let Some(code) = q.code.filter(|_| q.error.is_none()) else {
        // The provider said no, or the login failed there: the form again.
        let t = text::of(&lang);
        let problem =
            if q.error.as_deref() == Some("login_required") { t.upstream_not_fresh } else { t.upstream_failed };
        return with_cookie(again(StatusCode::UNAUTHORIZED, problem), clear);
    };
    let outcome = svc.upstream.oauth_exchange(&code, Some(&verifier), client_info(req)).await;
    let resp = match svc.provider.signed_in_upstream(outcome) {
        Ok(SignIn::Session(cookie)) => signed_in(&svc, &lang, &request, "", &cookie).await,
        Ok(SignIn::SecondFactor(mfa)) => {
            code_form(&svc, StatusCode::OK, &lang, (&request, ""), &mfa, None, target.as_deref())
        }
        Err(e) => match refusal_text(text::of(&lang), &e) {
            Some((status, problem)) => again(status, problem),
            None if matches!(e, Error::IdentityNotLinked | Error::InvalidCode | Error::CodeExpired) => {
                again(StatusCode::FORBIDDEN, text::of(&lang).upstream_failed)
            }
            None => failed_page(&svc, &lang, &e),
        },
    };
    with_cookie(resp, clear)
}

/// The code step's form; `(request, rd)` is where signing in goes on to.
fn code_form(
    svc: &AuthService,
    status: StatusCode,
    lang: &str,
    (request, rd): (&str, &str),
    mfa: &str,
    problem: Option<&str>,
    target: Option<&str>,
) -> Response {
    let csrf = random::new_token();
    let values = context! { csrf => csrf.as_str(), request, rd, mfa, problem };
    respond_with(svc, status, lang, "pages/login_code.html", values, Some(&csrf), target)
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct CodeForm {
    code: String,
    mfa: String,
    csrf: String,
    request: String,
    lang: String,
    rd: String,
}

/// `POST /ui/login/code`: the second step.
#[handler]
pub(super) async fn code_submit(svc: Data<&Arc<AuthService>>, req: &Request, Form(f): Form<CodeForm>) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    match svc.provider.sign_in_second_factor(&f.mfa, &f.code, client_info(req)).await {
        Ok(SignIn::Session(cookie)) => signed_in(&svc, &lang, &f.request, &f.rd, &cookie).await,
        Ok(SignIn::SecondFactor(_)) => failed_page(&svc, &lang, &Error::Internal("a third factor".into())),
        Err(Error::InvalidMfaCode) => {
            let target = target_of(&svc, &f.request, &f.rd).await;
            let wrong = text::of(&lang).wrong_code;
            code_form(
                &svc,
                StatusCode::UNAUTHORIZED,
                &lang,
                (&f.request, &f.rd),
                &f.mfa,
                Some(wrong),
                target.as_deref(),
            )
        }
        Err(Error::InvalidMfaToken) => refused_page(&svc, &lang, &Refused::Stale),
        Err(e) => match refusal_text(text::of(&lang), &e) {
            Some((status, message)) => {
                page(&svc, status, &lang, "pages/error.html", context! { message, start_over => false })
            }
            None => failed_page(&svc, &lang, &e),
        },
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct ConsentForm {
    decision: String,
    csrf: String,
    request: String,
    lang: String,
}

/// `POST /ui/consent`.
#[handler]
pub(super) async fn consent_submit(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    Form(f): Form<ConsentForm>,
) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    let cookie = read_cookie(req, session_cookie_name(&svc));
    let outcome = svc.provider.consent(&f.request, cookie.as_deref(), f.decision == "allow").await;
    answer(&svc, &lang, outcome, Vec::new())
}

/// `GET|POST /oauth2/logout` (OIDC RP-Initiated Logout).
#[handler]
pub async fn end_session(svc: Data<&Arc<AuthService>>, req: &Request, body: poem::Body) -> Response {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    if req.method() == Method::POST {
        let Ok(bytes) = body.into_bytes().await else {
            return refused_page(&svc, "en", &Refused::BadHint);
        };
        pairs.extend(url::form_urlencoded::parse(&bytes).into_owned());
    }
    let Ok(params) = params_of(pairs) else {
        return refused_page(&svc, "en", &Refused::BadHint);
    };
    let lang = lang_of(&svc, req, params.get("lang").map(String::as_str), params.get("ui_locales").map(String::as_str));
    let confirmed = req.method() == Method::POST && params.get("decision").map(String::as_str) == Some("logout");
    if confirmed && !csrf_ok(&svc, req, params.get("csrf").map(String::as_str).unwrap_or_default()) {
        return forbidden(&svc, &lang);
    }
    let cookie = read_cookie(req, session_cookie_name(&svc));
    let clear = session_cookies(&svc, "", 0);
    match svc.provider.end_session(&params, cookie.as_deref(), confirmed).await {
        Ok(LoggedOut::Redirect(to)) => with_cookie(see_other(&to), clear),
        Ok(LoggedOut::Confirm) => {
            let csrf = random::new_token();
            let carried: Vec<(String, String)> = ["id_token_hint", "post_logout_redirect_uri", "state", "client_id"]
                .into_iter()
                .filter_map(|k| params.get(k).map(|v| (k.to_owned(), v.clone())))
                .collect();
            let action = if req.original_uri().path().starts_with("/ui/") { "/ui/logout" } else { "/oauth2/logout" };
            let values = context! { csrf => csrf.as_str(), carried, action };
            respond_with(&svc, StatusCode::OK, &lang, "pages/sign_out.html", values, Some(&csrf), None)
        }
        Ok(LoggedOut::Done) => {
            with_cookie(page(&svc, StatusCode::OK, &lang, "pages/signed_out.html", context! {}), clear)
        }
        Err(r) => refused_page(&svc, &lang, &r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_targets_are_origins() {
        assert_eq!(origin_of("https://app.example:8443/cb?x=1").as_deref(), Some("https://app.example:8443"));
        assert_eq!(origin_of("http://127.0.0.1:9000/cb").as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(origin_of("com.example.app:/cb").as_deref(), Some("com.example.app:"));
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct PasskeyForm {
    csrf: String,
    request: String,
    lang: String,
    ceremony: String,
    /// The browser's `credential.toJSON()`, as JSON text.
    credential: String,
    rd: String,
}

/// `POST /ui/login/passkey`: the login form's passkey, answered by the page's script.
#[handler]
pub(super) async fn passkey_submit(
    svc: Data<&Arc<AuthService>>,
    req: &Request,
    Form(f): Form<PasskeyForm>,
) -> Response {
    let lang = locale(&svc, req, Some(&f.lang));
    if !csrf_ok(&svc, req, &f.csrf) {
        return forbidden(&svc, &lang);
    }
    let credential = serde_json::from_str(&f.credential).unwrap_or_default();
    let outcome = svc.passkeys.finish_sign_in(&f.ceremony, credential, Some("Browser".into()), client_info(req)).await;
    match outcome.and_then(|pair| svc.provider.signed_in_by_passkey(&pair)) {
        Ok(SignIn::Session(cookie)) => signed_in(&svc, &lang, &f.request, &f.rd, &cookie).await,
        Ok(SignIn::SecondFactor(_)) => failed_page(&svc, &lang, &Error::Internal("no second step".into())),
        Err(e) => {
            let t = text::of(&lang);
            let (status, problem) = match &e {
                Error::InvalidPasskey | Error::InvalidCeremony | Error::Malformed(_) | Error::PasskeyRejected(_) => {
                    (StatusCode::UNAUTHORIZED, t.passkey_failed)
                }
                other => match refusal_text(t, other) {
                    Some(r) => r,
                    None => return failed_page(&svc, &lang, &e),
                },
            };
            let target = target_of(&svc, &f.request, &f.rd).await;
            let client = match f.request.is_empty() {
                true => None,
                false => svc.provider.pending_of(&f.request).await.ok().map(|p| p.client_name),
            };
            let page = LoginPage {
                client: client.as_deref(),
                problem: Some(problem),
                target: target.as_deref(),
                rd: &f.rd,
                ..LoginPage::default()
            };
            login_form(&svc, status, &lang, &f.request, page)
        }
    }
}
