//! Cookie transport: the refresh token (and by default the access token) in HttpOnly cookies,
//! with a double-submit CSRF token for every state-changing request authenticated by cookie.
//!
//! The access and CSRF cookies use the `__Host-` prefix (Secure, Path=/, no Domain). The refresh
//! cookie is scoped to `/v1/auth`, which `__Host-` forbids, so it takes `__Secure-` instead
//! (RFC 6265bis §4.1.3).

use poem::{
    Request,
    http::{Method, header},
};
use subtle::ConstantTimeEq as _;

use crate::{config::TokensConfig, error::Error, security::random, service::TokenPair};

pub const CSRF_HEADER: &str = "x-csrf-token";
const REFRESH_PATH: &str = "/v1/auth";

pub struct CookieNames {
    pub access: &'static str,
    pub refresh: &'static str,
    pub csrf: &'static str,
    secure: bool,
}

impl CookieNames {
    pub fn for_config(t: &TokensConfig) -> Self {
        if t.insecure_dev_cookies {
            Self { access: "authd_access", refresh: "authd_refresh", csrf: "authd_csrf", secure: false }
        } else {
            Self {
                access: "__Host-authd_access",
                refresh: "__Secure-authd_refresh",
                csrf: "__Host-authd_csrf",
                secure: true,
            }
        }
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: u64, http_only: bool) -> String {
        let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Strict");
        if http_only {
            c.push_str("; HttpOnly");
        }
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }

    /// The Set-Cookie values for a fresh token pair.
    pub fn set(&self, t: &TokensConfig, pair: &TokenPair) -> Vec<String> {
        let mut out = vec![
            self.cookie(self.refresh, &pair.refresh_token, REFRESH_PATH, pair.refresh_expires_in, true),
            self.cookie(self.csrf, &random::new_token(), "/", pair.refresh_expires_in, false),
        ];
        if t.access_cookie {
            out.push(self.cookie(self.access, &pair.access_token, "/", pair.expires_in, true));
        }
        out
    }

    /// Set-Cookie values that delete every auth cookie.
    pub fn clear(&self) -> Vec<String> {
        vec![
            self.cookie(self.refresh, "", REFRESH_PATH, 0, true),
            self.cookie(self.csrf, "", "/", 0, false),
            self.cookie(self.access, "", "/", 0, true),
        ]
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn read_cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Double-submit check: the X-CSRF-Token header must equal the CSRF cookie.
pub fn check_csrf(req: &Request, names: &CookieNames) -> Result<(), Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let cookie = read_cookie(req, names.csrf).filter(|c| !c.is_empty()).ok_or(Error::CsrfFailed)?;
    let header = req.headers().get(CSRF_HEADER).map(|h| h.as_bytes()).ok_or(Error::CsrfFailed)?;
    if bool::from(header.ct_eq(cookie.as_bytes())) { Ok(()) } else { Err(Error::CsrfFailed) }
}
