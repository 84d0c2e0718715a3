//! Forward-auth for reverse proxies: `/v1/authz/auth-request` (nginx `auth_request`) and
//! `/v1/authz/forward-auth` (Traefik ForwardAuth, Caddy `forward_auth`).

use std::sync::Arc;

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, OpenApi, param::Header};

use super::{client::client_info, cookies::read_cookie, pages::forward_cookie_name, problem::ApiError, views::ApiTags};
use crate::{
    error::{Error, FieldError},
    service::{AuthService, ForwardIdentity, ForwardTarget, Verdict},
};

pub struct ForwardAuthApi;

/// The answer to a proxy. Every identity header is always set, empty when there is nothing to
/// say, so that a client's own header of that name never reaches the application.
#[derive(ApiResponse)]
enum Reply {
    /// Allowed.
    #[oai(status = 200)]
    Allowed(
        /// The username, else the email.
        #[oai(header = "Remote-User")]
        String,
        #[oai(header = "Remote-Email")] String,
        /// The display name.
        #[oai(header = "Remote-Name")]
        String,
        /// The user's roles, comma-joined.
        #[oai(header = "Remote-Groups")]
        String,
        #[oai(header = "Remote-Session")] String,
    ),
    /// A browser's navigation while not signed in (Traefik, Caddy): to the hosted login.
    #[oai(status = 302)]
    Found(#[oai(header = "Location")] String),
    /// The same for a method other than GET and HEAD.
    #[oai(status = 303)]
    SeeOther(#[oai(header = "Location")] String),
    /// Not signed in. For nginx, `Location` is the hosted login (`auth_request_set` and
    /// `error_page 401` turn it into a redirect).
    #[oai(status = 401)]
    SignIn(#[oai(header = "Location")] String),
    /// Signed in, but the rule does not let this user through (or no rule covers the request).
    #[oai(status = 403)]
    Forbidden,
}

fn allowed(who: Option<ForwardIdentity>) -> Reply {
    let w = who.unwrap_or_default();
    let h = |v: String| header_safe(&v);
    Reply::Allowed(h(w.user), h(w.email), h(w.name), h(w.groups), h(w.session))
}

/// A header value that can always be sent: bytes outside printable ASCII are percent-encoded
/// (UTF-8), so that a name like `José` arrives as `Jos%C3%A9` rather than not at all.
fn header_safe(v: &str) -> String {
    const UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    if v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return v.to_owned();
    }
    percent_encoding::utf8_percent_encode(v, UNSAFE).to_string()
}

/// Target headers that are there but make no URL: a rule the schema cannot say, so 422.
fn unusable(what: &str) -> ApiError {
    ApiError::from(Error::Invalid(vec![FieldError::new(
        "target",
        "invalid_target",
        format!("the proxy must send {what}"),
    )]))
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(poem::http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

async fn decide(svc: &AuthService, req: &Request, target: &ForwardTarget) -> Result<Verdict, ApiError> {
    let cookie = read_cookie(req, forward_cookie_name(svc));
    Ok(svc.forward_auth.check(target, cookie.as_deref(), bearer(req), client_info(req).ip).await?)
}

#[OpenApi(prefix_path = "/v1/authz", tag = "ApiTags::Authz")]
impl ForwardAuthApi {
    /// Forward-auth for nginx `auth_request`
    ///
    /// The target comes from `X-Original-URL` and `X-Original-Method` (400 without them). 200
    /// with the identity headers; 401 with a `Location` to the hosted login when not signed in;
    /// 403 when the rule refuses. Rules: `[[forward_auth.rules]]`.
    #[oai(path = "/auth-request", method = "get", operation_id = "forward_auth_nginx")]
    async fn auth_request(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        #[oai(name = "X-Original-URL", validator(min_length = 1, max_length = 8192))] url: Header<String>,
        #[oai(name = "X-Original-Method", validator(min_length = 1, max_length = 16))] method: Header<String>,
    ) -> Result<Reply, ApiError> {
        let target =
            ForwardTarget::parse(&url.0, &method.0).ok_or_else(|| unusable("an absolute http(s) X-Original-URL"))?;
        Ok(match decide(&svc, req, &target).await? {
            Verdict::Allow(who) => allowed(who),
            Verdict::SignIn(login) => Reply::SignIn(login),
            Verdict::Forbidden => Reply::Forbidden,
        })
    }

    /// Forward-auth for Traefik ForwardAuth and Caddy `forward_auth`
    ///
    /// The target comes from `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri` (400 without
    /// them); `X-Original-URL` is ignored here, since a client can send it through these proxies.
    /// Not signed in: a browser's navigation (`Accept` with `text/html`, no
    /// `X-Requested-With: XMLHttpRequest`) is sent to the hosted login (302 for GET and HEAD,
    /// 303 otherwise), anything else gets 401.
    #[oai(path = "/forward-auth", method = "get", operation_id = "forward_auth_traefik")]
    #[allow(clippy::too_many_arguments)]
    async fn forward_auth(
        &self,
        svc: Data<&Arc<AuthService>>,
        req: &Request,
        #[oai(name = "X-Forwarded-Method", validator(min_length = 1, max_length = 16))] method: Header<String>,
        #[oai(name = "X-Forwarded-Proto", validator(min_length = 1, max_length = 8))] proto: Header<String>,
        #[oai(name = "X-Forwarded-Host", validator(min_length = 1, max_length = 1024))] host: Header<String>,
        #[oai(name = "X-Forwarded-Uri", validator(min_length = 1, max_length = 8192))] uri: Header<String>,
    ) -> Result<Reply, ApiError> {
        let (method, proto, host, uri) = (method.0, proto.0, host.0, uri.0);
        let uri = if uri.starts_with('/') { uri } else { format!("/{uri}") };
        let target = ForwardTarget::parse(&format!("{proto}://{host}{uri}"), &method)
            .ok_or_else(|| unusable("X-Forwarded-Proto (http or https), -Host and -Uri making a URL"))?;
        Ok(match decide(&svc, req, &target).await? {
            Verdict::Allow(who) => allowed(who),
            Verdict::Forbidden => Reply::Forbidden,
            Verdict::SignIn(login) => {
                let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
                let navigation =
                    h("accept").contains("text/html") && !h("x-requested-with").eq_ignore_ascii_case("xmlhttprequest");
                match (navigation, target.method.as_str()) {
                    (false, _) => Reply::SignIn(login),
                    (true, "GET" | "HEAD") => Reply::Found(login),
                    (true, _) => Reply::SeeOther(login),
                }
            }
        })
    }
}
