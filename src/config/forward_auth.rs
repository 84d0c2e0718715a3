//! Keys for forward-auth: the access rules a reverse proxy asks authd to apply.

use serde::{Deserialize, Serialize};

/// What a rule demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Anyone, signed in or not.
    Bypass,
    /// A signed-in user.
    SignedIn,
    /// A user signed in with two factors (TOTP, or a passkey).
    Mfa,
    /// Nobody.
    Deny,
}

/// One rule; the first that matches a request decides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ForwardRule {
    /// `app.example.com`, or `*.example.com` for its subdomains; the port is ignored.
    pub host: String,
    /// Prefixes of the decoded path (dot segments removed); none: every path.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Methods; none: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `"http"` lets the rule match (and `rd` go to) plain http; otherwise https only.
    #[serde(default)]
    pub scheme: Option<String>,
    pub policy: Policy,
    /// Any one of these roles is required.
    #[serde(default)]
    pub roles: Vec<String>,
    /// All of these permissions are required.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The client must come from one of these networks.
    #[serde(default)]
    pub networks: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// A parent domain the hosted-login session cookie covers (`example.com`), so that one login
    /// serves every application under it.
    pub cookie_domain: Option<String>,
    /// Lets `cookie_domain` work over plain http (loopback tests); the server warns at start.
    pub insecure_cookies: bool,
    pub rules: Vec<ForwardRule>,
}
