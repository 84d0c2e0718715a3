//! Keys for login with external providers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Secret};

/// What a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect with discovery from `issuer`.
    Oidc,
    /// OpenID Connect at accounts.google.com.
    Google,
    /// OAuth 2 with GitHub's user API (only verified emails count).
    Github,
    /// OAuth 2 with Facebook's Graph API.
    Facebook,
    /// Any OAuth 2 provider: `authorize_url`, `token_url`, `userinfo_url` and a claim mapping.
    Oauth2,
}

/// Where a generic OAuth 2 provider's user info keeps each field (top-level JSON members).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub subject: String,
    pub email: String,
    pub email_verified: String,
    pub name: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            email: "email".into(),
            email_verified: "email_verified".into(),
            name: "name".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub client_id: String,
    /// Better from the environment: `AUTHD_OAUTH__PROVIDERS__<NAME>__CLIENT_SECRET`.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Default per kind (`openid email profile` for OpenID Connect).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The button's label; default: the name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `oidc`: the issuer (its `/.well-known/openid-configuration` is read). `google` presets it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// OAuth 2 endpoints; presets for `github` and `facebook`, required for `oauth2`.
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub userinfo_url: Option<String>,
    /// `github`: the list of the user's emails (`/user/emails`).
    #[serde(default)]
    pub emails_url: Option<String>,
    /// `oauth2`: where the user info keeps each field.
    #[serde(default)]
    pub claims: ClaimMapping,
}

/// Whether the application that starts a login must bind its exchange code to itself with PKCE
/// of its own (RFC 7636, S256), as in Supabase's PKCE flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppPkce {
    /// `start` needs `code_challenge` (S256), and the exchange the matching `code_verifier`.
    Required,
    /// A login started without a challenge is exchanged without a verifier: for applications not
    /// yet updated, which stay open to login CSRF (a warning at start says so).
    Optional,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OauthConfig {
    /// A first external login creates an account.
    pub signup: bool,
    /// A first external login whose email the provider verified joins the account that has that
    /// email, if that account has confirmed it too. Never for an unverified email (account
    /// takeover), nor into an account whose email nobody proved (pre-account hijack).
    pub link_by_verified_email: bool,
    /// Whether an application's login must carry PKCE of its own from start to exchange.
    pub app_pkce: AppPkce,
    /// The application URLs a login may return to, compared exactly (no prefixes, no wildcards).
    pub allowed_redirects: Vec<String>,
    /// Each call to a provider must finish within this.
    pub timeout: HumanDuration,
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Default for OauthConfig {
    fn default() -> Self {
        Self {
            signup: true,
            link_by_verified_email: false,
            app_pkce: AppPkce::Required,
            allowed_redirects: Vec::new(),
            timeout: HumanDuration::secs(10),
            providers: BTreeMap::new(),
        }
    }
}

impl ProviderConfig {
    /// The issuer, preset for Google.
    pub fn issuer(&self) -> Option<String> {
        match (self.kind, &self.issuer) {
            (_, Some(i)) => Some(i.trim_end_matches('/').to_owned()),
            (ProviderKind::Google, None) => Some("https://accounts.google.com".into()),
            _ => None,
        }
    }

    pub fn is_oidc(&self) -> bool {
        matches!(self.kind, ProviderKind::Oidc | ProviderKind::Google)
    }

    /// (authorize, token, user info, emails) for OAuth 2 providers, presets filled in.
    pub fn endpoints(&self) -> (Option<String>, Option<String>, Option<String>, Option<String>) {
        let preset = |url: &Option<String>, default: &str| url.clone().or_else(|| Some(default.to_owned()));
        match self.kind {
            ProviderKind::Github => (
                preset(&self.authorize_url, "https://github.com/login/oauth/authorize"),
                preset(&self.token_url, "https://github.com/login/oauth/access_token"),
                preset(&self.userinfo_url, "https://api.github.com/user"),
                preset(&self.emails_url, "https://api.github.com/user/emails"),
            ),
            ProviderKind::Facebook => (
                preset(&self.authorize_url, "https://www.facebook.com/v19.0/dialog/oauth"),
                preset(&self.token_url, "https://graph.facebook.com/v19.0/oauth/access_token"),
                preset(&self.userinfo_url, "https://graph.facebook.com/v19.0/me?fields=id,name,email"),
                None,
            ),
            _ => (self.authorize_url.clone(), self.token_url.clone(), self.userinfo_url.clone(), None),
        }
    }

    pub fn scopes(&self) -> Vec<String> {
        if !self.scopes.is_empty() {
            return self.scopes.clone();
        }
        let defaults: &[&str] = match self.kind {
            ProviderKind::Oidc | ProviderKind::Google => &["openid", "email", "profile"],
            ProviderKind::Github => &["read:user", "user:email"],
            ProviderKind::Facebook => &["email", "public_profile"],
            ProviderKind::Oauth2 => &[],
        };
        defaults.iter().map(|s| (*s).to_owned()).collect()
    }

    /// What must be set for this kind, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let http = |u: &Option<String>| {
            u.as_deref().is_some_and(|u| url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")))
        };
        if self.client_id.trim().is_empty() {
            return Some(("client_id", "is required"));
        }
        match self.kind {
            ProviderKind::Oidc if !http(&self.issuer) => {
                Some(("issuer", "an http(s) URL is required for kind = \"oidc\""))
            }
            ProviderKind::Oauth2
                if !(http(&self.authorize_url) && http(&self.token_url) && http(&self.userinfo_url)) =>
            {
                Some((
                    "authorize_url",
                    "authorize_url, token_url and userinfo_url (http(s) URLs) are required for kind = \"oauth2\"",
                ))
            }
            _ => None,
        }
    }
}
