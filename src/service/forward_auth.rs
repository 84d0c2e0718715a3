//! Forward-auth: a reverse proxy asks, for each request to an application it fronts, who this
//! is and whether they may. The rules come from `[[forward_auth.rules]]`, first match wins; the
//! session and user come from memory on a hit, with revocations applied as for access tokens.

use std::{net::IpAddr, sync::Arc};

use uuid::Uuid;

use super::{core::Core, provider::Provider, tokens::Tokens};
use crate::{
    config::{ForwardRule, Policy},
    error::Result,
    model::{User, granted_permissions, multi_factor, permission_matches},
};

/// The request a proxy asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: String,
    pub scheme: String,
    /// Lower case, without the port.
    pub host: String,
    /// The path as sent (percent-encoded), without the query.
    pub path: String,
    /// The whole URL, where the user goes back to after signing in.
    pub url: String,
}

impl Target {
    /// A target from an absolute http(s) URL and a method.
    pub fn parse(url: &str, method: &str) -> Option<Self> {
        let u = url::Url::parse(url).ok()?;
        if !matches!(u.scheme(), "http" | "https") || method.is_empty() || method.len() > 16 {
            return None;
        }
        Some(Self {
            method: method.to_ascii_uppercase(),
            scheme: u.scheme().to_owned(),
            host: u.host_str()?.to_ascii_lowercase(),
            path: u.path().to_owned(),
            url: u.into(),
        })
    }
}

/// Who the request is from, as the identity headers tell the application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The username, else the email.
    pub user: String,
    pub email: String,
    pub name: String,
    /// Roles, comma-joined.
    pub groups: String,
    pub session: String,
}

/// The answer to the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through; with who it is, when signed in.
    Allow(Option<Identity>),
    /// Not signed in (or not with two factors where the rule wants them): the hosted login,
    /// coming back to the target.
    SignIn(String),
    Forbidden,
}

/// The path as a rule sees it: percent-decoded, dot segments removed.
pub fn normal_path(path: &str) -> String {
    let decoded = percent_encoding_decode(path);
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !out.is_empty();
    let mut p = format!("/{}", out.join("/"));
    if trailing {
        p.push('/');
    }
    p
}

fn percent_encoding_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host.len() > parent.len() + 1 && host.ends_with(&format!(".{}", parent.to_ascii_lowercase())),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Whether `prefix` covers `path`: equal, or a whole segment further on.
fn path_matches(prefix: &str, path: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| prefix.ends_with('/') || rest.starts_with('/'))
}

fn scheme_allowed(rule: &ForwardRule, scheme: &str) -> bool {
    scheme == "https" || rule.scheme.as_deref() == Some("http")
}

/// The rule that decides `target` from `ip`, if any.
pub fn rule_for<'a>(rules: &'a [ForwardRule], target: &Target, ip: Option<IpAddr>) -> Option<&'a ForwardRule> {
    let path = normal_path(&target.path);
    rules.iter().find(|r| {
        host_matches(&r.host, &target.host)
            && scheme_allowed(r, &target.scheme)
            && (r.paths.is_empty() || r.paths.iter().any(|p| path_matches(p, &path)))
            && (r.methods.is_empty() || r.methods.iter().any(|m| m.eq_ignore_ascii_case(&target.method)))
            && (r.networks.is_empty() || ip.is_some_and(|ip| r.networks.iter().any(|n| n.contains(&ip))))
    })
}

/// The forward-auth area.
#[derive(Clone)]
pub struct ForwardAuth {
    core: Arc<Core>,
    provider: Arc<Provider>,
    tokens: Tokens,
}

impl ForwardAuth {
    pub(super) fn new(core: Arc<Core>, provider: Arc<Provider>, tokens: Tokens) -> Self {
        Self { core, provider, tokens }
    }

    fn login_url(&self, target: &Target) -> String {
        let rd: String = url::form_urlencoded::byte_serialize(target.url.as_bytes()).collect();
        format!("{}/ui/login?rd={rd}", self.core.public_url().trim_end_matches('/'))
    }

    /// Decides a request: the rule, then who is asking (the hosted-login session cookie, or a
    /// bearer access token), then what the rule demands of them.
    pub async fn check(
        &self,
        target: &Target,
        cookie: Option<&str>,
        bearer: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Verdict> {
        let Some(rule) = rule_for(&self.core.cfg.forward_auth.rules, target, ip) else {
            return Ok(Verdict::Forbidden);
        };
        match rule.policy {
            Policy::Deny => return Ok(Verdict::Forbidden),
            Policy::Bypass => return Ok(Verdict::Allow(None)),
            Policy::SignedIn | Policy::Mfa => {}
        }
        let Some((user, session, amr)) = self.who(cookie, bearer).await? else {
            return Ok(Verdict::SignIn(self.login_url(target)));
        };
        if rule.policy == Policy::Mfa && !multi_factor(&amr) {
            return Ok(Verdict::SignIn(self.login_url(target)));
        }
        if !rule.roles.is_empty() && !rule.roles.iter().any(|r| user.roles.contains(r)) {
            return Ok(Verdict::Forbidden);
        }
        if !rule.permissions.is_empty() {
            let roles = self.core.roles_snapshot();
            let granted = granted_permissions(roles.values(), &user.roles);
            if !rule.permissions.iter().all(|p| granted.iter().any(|g| permission_matches(g, p))) {
                return Ok(Verdict::Forbidden);
            }
        }
        Ok(Verdict::Allow(Some(Identity {
            user: user.username.clone().or(user.email.clone()).unwrap_or_default(),
            email: user.email.clone().unwrap_or_default(),
            name: user.display_name.clone().unwrap_or_default(),
            groups: user.roles.join(","),
            session: session.to_string(),
        })))
    }

    /// The user, session and its methods, from memory where they were read lately.
    async fn who(&self, cookie: Option<&str>, bearer: Option<&str>) -> Result<Option<(User, Uuid, Vec<String>)>> {
        if let Some(b) = self.provider.browser(cookie).await? {
            return Ok(Some((b.user, b.session.id, b.session.amr)));
        }
        let Some(ctx) = bearer.and_then(|t| self.tokens.authenticate(t).ok()) else { return Ok(None) };
        // An application's own token serves that application, not the proxy's others.
        if ctx.claims.azp.is_some() || ctx.claims.client_id.is_some() {
            return Ok(None);
        }
        let user = match self.core.store.cached_user(ctx.user_id) {
            Some(u) => (*u).clone(),
            None => match self.core.user(ctx.user_id).await {
                Ok(u) => u,
                Err(_) => return Ok(None),
            },
        };
        if !user.is_active() {
            return Ok(None);
        }
        Ok(Some((user, ctx.session_id, ctx.claims.amr.clone())))
    }

    /// Whether the hosted login may send a user back to `rd`: a URL on a host the rules cover,
    /// over https unless that rule allows plain http.
    pub fn return_allowed(&self, rd: &str) -> bool {
        let Some(target) = Target::parse(rd, "GET") else { return false };
        self.core
            .cfg
            .forward_auth
            .rules
            .iter()
            .any(|r| host_matches(&r.host, &target.host) && scheme_allowed(r, &target.scheme))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(host: &str, paths: &[&str], policy: Policy) -> ForwardRule {
        ForwardRule {
            host: host.into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            methods: Vec::new(),
            scheme: None,
            policy,
            roles: Vec::new(),
            permissions: Vec::new(),
            networks: Vec::new(),
        }
    }

    fn target(url: &str) -> Target {
        Target::parse(url, "GET").unwrap()
    }

    #[test]
    fn paths_are_decoded_and_dot_segments_removed_before_matching() {
        assert_eq!(normal_path("/public/../admin"), "/admin");
        assert_eq!(normal_path("/public/%2e%2e/admin"), "/admin");
        assert_eq!(normal_path("/a/./b//c/"), "/a/b/c/");
        assert_eq!(normal_path("/%2Fetc"), "/etc");
        let rules =
            [rule("app.example.com", &["/public"], Policy::Bypass), rule("app.example.com", &[], Policy::SignedIn)];
        let decide = |u: &str| rule_for(&rules, &target(u), None).map(|r| r.policy);
        assert_eq!(decide("https://app.example.com/public/x"), Some(Policy::Bypass));
        assert_eq!(decide("https://app.example.com/public"), Some(Policy::Bypass));
        assert_eq!(decide("https://app.example.com/publicity"), Some(Policy::SignedIn));
        assert_eq!(decide("https://app.example.com/public/../admin"), Some(Policy::SignedIn));
        assert_eq!(decide("https://app.example.com/public/%2e%2e/admin"), Some(Policy::SignedIn));
        assert_eq!(decide("https://app.example.com/x?/public"), Some(Policy::SignedIn), "the query never counts");
    }

    #[test]
    fn hosts_match_exactly_or_as_subdomains_and_plain_http_needs_the_rule() {
        let mut wild = rule("*.example.com", &[], Policy::SignedIn);
        let rules = [wild.clone()];
        assert!(rule_for(&rules, &target("https://a.example.com:8443/"), None).is_some());
        assert!(rule_for(&rules, &target("https://A.Example.com/"), None).is_some());
        assert!(rule_for(&rules, &target("https://example.com/"), None).is_none());
        assert!(rule_for(&rules, &target("https://a.example.com.evil.net/"), None).is_none());
        assert!(rule_for(&rules, &target("https://evilexample.com/"), None).is_none());
        assert!(rule_for(&rules, &target("http://a.example.com/"), None).is_none());
        wild.scheme = Some("http".into());
        assert!(rule_for(&[wild], &target("http://a.example.com/"), None).is_some());
    }

    #[test]
    fn methods_and_networks_narrow_a_rule() {
        let mut r = rule("app.test", &[], Policy::Bypass);
        r.methods = vec!["get".into()];
        r.networks = vec!["10.0.0.0/8".parse().unwrap()];
        let rules = [r];
        let t = target("https://app.test/");
        assert!(rule_for(&rules, &t, Some("10.1.2.3".parse().unwrap())).is_some());
        assert!(rule_for(&rules, &t, Some("192.168.1.1".parse().unwrap())).is_none());
        assert!(rule_for(&rules, &t, None).is_none());
        let post = Target::parse("https://app.test/", "POST").unwrap();
        assert!(rule_for(&rules, &post, Some("10.1.2.3".parse().unwrap())).is_none());
    }
}
