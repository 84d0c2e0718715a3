//! Forward-auth: a reverse proxy asks, for each request to an application it fronts, who this
//! is and whether they may. The rules come from `[[forward_auth.rules]]`, first match wins; the
//! session and user come from memory on a hit, with revocations applied as for access tokens.

use std::{net::IpAddr, sync::Arc};

use uuid::Uuid;

use super::{
    authority::Principal,
    core::{Core, find_account},
    provider::Provider,
    tokens::Tokens,
};
use crate::{
    config::{ForwardRule, Policy},
    error::{Error, FieldError, Result},
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
    /// Whether the path reads one way only: no dot segments, empty segments, encoded slashes or
    /// backslashes, `;` parameters or NUL, literal or encoded. Any other path might be read one
    /// way here and another by the application, so it is refused.
    pub canonical: bool,
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
        // The URL parser resolves dot segments and backslashes; the rules judge what was sent.
        let path = raw_path(url);
        let host = u.host_str()?;
        Some(Self {
            method: method.to_owned(),
            scheme: u.scheme().to_owned(),
            host: host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase(),
            canonical: canonical(&path),
            path,
            url: u.into(),
        })
    }
}

/// The path of an absolute URL as written: after the authority, before the query.
fn raw_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    match rest.find(['/', '\\']) {
        Some(i) => rest[i..].to_owned(),
        None => "/".to_owned(),
    }
}

/// See [`Target::canonical`].
fn canonical(path: &str) -> bool {
    if path.contains(['\\', ';']) || path.contains("//") {
        return false;
    }
    path.split('/').skip(1).all(|seg| match percent_encoding::percent_decode_str(seg).decode_utf8() {
        Ok(s) => !matches!(&*s, "." | "..") && !s.contains(['/', '\\', ';', '\0']),
        Err(_) => false,
    })
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
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
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
            && (r.methods.is_empty() || r.methods.contains(&target.method))
            && (r.networks.is_empty() || ip.is_some_and(|ip| r.networks.iter().any(|n| n.contains(&ip))))
    })
}

/// What a rule makes of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    SignIn,
    Forbidden,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::SignIn => "sign_in",
            Self::Forbidden => "forbidden",
        }
    }
}

/// Who asks, as the rules see them.
pub struct Subject<'a> {
    pub roles: &'a [String],
    /// The permissions the roles grant (needed only where the rule names permissions).
    pub granted: &'a [String],
    pub multi_factor: bool,
}

/// The decision of `rule` (none: no rule matched) for `subject` (none: not signed in), and why.
pub fn judge(rule: Option<&ForwardRule>, subject: Option<&Subject<'_>>) -> (Decision, String) {
    let Some(rule) = rule else {
        return (Decision::Forbidden, "no rule covers the request, and what no rule covers is denied".into());
    };
    match rule.policy {
        Policy::Deny => return (Decision::Forbidden, "the rule denies everyone".into()),
        Policy::Bypass => return (Decision::Allow, "the rule lets anyone through, signed in or not".into()),
        Policy::SignedIn | Policy::Mfa => {}
    }
    let Some(s) = subject else { return (Decision::SignIn, "not signed in: to the hosted login".into()) };
    if rule.policy == Policy::Mfa && !s.multi_factor {
        return (Decision::SignIn, "the rule wants two factors and the session has one: to the hosted login".into());
    }
    if !rule.roles.is_empty() && !rule.roles.iter().any(|r| s.roles.contains(r)) {
        let why = format!(
            "the rule wants one of the roles [{}]; the user holds [{}]",
            rule.roles.join(", "),
            s.roles.join(", ")
        );
        return (Decision::Forbidden, why);
    }
    let missing: Vec<&str> = rule
        .permissions
        .iter()
        .filter(|p| !s.granted.iter().any(|g| permission_matches(g, p)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return (Decision::Forbidden, format!("the rule wants the permissions the user lacks: {}", missing.join(", ")));
    }
    let how = if rule.policy == Policy::Mfa { "signed in with two factors" } else { "signed in" };
    (Decision::Allow, format!("the user is {how} and holds what the rule wants"))
}

/// Whether rule `a`, placed first, matches every request that `b` would: then `b` never decides.
fn covers(a: &ForwardRule, b: &ForwardRule) -> bool {
    let host = a.host.eq_ignore_ascii_case(&b.host)
        || a.host.starts_with("*.") && host_matches(&a.host, b.host.strip_prefix("*.").unwrap_or(&b.host));
    let scheme = a.scheme.as_deref() == Some("http") || b.scheme.as_deref() != Some("http");
    let paths =
        a.paths.is_empty() || !b.paths.is_empty() && b.paths.iter().all(|p| a.paths.iter().any(|q| path_matches(q, p)));
    let methods = a.methods.is_empty() || !b.methods.is_empty() && b.methods.iter().all(|m| a.methods.contains(m));
    let networks = a.networks.is_empty()
        || !b.networks.is_empty() && b.networks.iter().all(|n| a.networks.iter().any(|m| m.contains(n)));
    host && scheme && paths && methods && networks
}

/// Rules that can never decide, each with the earlier rule that takes all their requests.
pub fn shadowed_rules(rules: &[ForwardRule]) -> Vec<(usize, usize)> {
    rules.iter().enumerate().filter_map(|(i, b)| rules[..i].iter().position(|a| covers(a, b)).map(|j| (i, j))).collect()
}

/// A rule as the config file writes it, on one line.
pub fn describe(rule: &ForwardRule) -> String {
    let list = |k: &str, v: &[String]| {
        (!v.is_empty())
            .then(|| format!(", {k} = [{}]", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")))
    };
    let nets: Vec<String> = rule.networks.iter().map(ToString::to_string).collect();
    let policy = serde_json::to_value(rule.policy).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    format!(
        "host = {:?}{}{}{}, policy = {policy:?}{}{}{}",
        rule.host,
        list("paths", &rule.paths).unwrap_or_default(),
        list("methods", &rule.methods).unwrap_or_default(),
        rule.scheme.as_ref().map(|s| format!(", scheme = {s:?}")).unwrap_or_default(),
        list("roles", &rule.roles).unwrap_or_default(),
        list("permissions", &rule.permissions).unwrap_or_default(),
        list("networks", &nets).unwrap_or_default(),
    )
}

/// Which rule decides a request and why: `authd forward-auth test`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Explanation {
    /// The deciding rule's place in `[[forward_auth.rules]]`, from 0.
    pub rule: Option<usize>,
    /// That rule, as the config file writes it.
    pub rule_text: Option<String>,
    /// `allow`, `sign_in` or `forbidden`.
    pub decision: String,
    pub why: String,
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
        if !target.canonical {
            return Ok(Verdict::Forbidden);
        }
        let rule = rule_for(&self.core.cfg.forward_auth.rules, target, ip);
        // Bypass, deny and no rule need nobody looked up.
        if !rule.is_some_and(|r| matches!(r.policy, Policy::SignedIn | Policy::Mfa)) {
            return Ok(match judge(rule, None).0 {
                Decision::Allow => Verdict::Allow(None),
                _ => Verdict::Forbidden,
            });
        }
        let Some((user, session, amr)) = self.who(cookie, bearer).await? else {
            return Ok(Verdict::SignIn(self.login_url(target)));
        };
        let granted = self.granted(rule, &user);
        let subject = Subject { roles: &user.roles, granted: &granted, multi_factor: multi_factor(&amr) };
        match judge(rule, Some(&subject)).0 {
            Decision::Allow => {}
            Decision::SignIn => return Ok(Verdict::SignIn(self.login_url(target))),
            Decision::Forbidden => return Ok(Verdict::Forbidden),
        }
        Ok(Verdict::Allow(Some(Identity {
            user: user.username.clone().or(user.email.clone()).unwrap_or_default(),
            email: user.email.clone().unwrap_or_default(),
            name: user.display_name.clone().unwrap_or_default(),
            groups: user.roles.join(","),
            session: session.to_string(),
        })))
    }

    /// The permissions `user` holds, where `rule` asks for any.
    fn granted(&self, rule: Option<&ForwardRule>, user: &User) -> Vec<String> {
        if rule.is_none_or(|r| r.permissions.is_empty()) {
            return Vec::new();
        }
        let roles = self.core.roles_snapshot();
        granted_permissions(roles.values(), &user.roles).into_iter().collect()
    }

    /// Which rule decides `method url` for `login` (signed in with two factors when
    /// `multi_factor`), from `ip`, and why. `login` `None`: someone not signed in.
    pub async fn explain(
        &self,
        by: &Principal,
        url: &str,
        method: &str,
        login: Option<&str>,
        multi_factor: bool,
        ip: Option<IpAddr>,
    ) -> Result<Explanation> {
        self.core.authority(by, "users:read")?;
        let target = Target::parse(url, method).ok_or_else(|| {
            Error::Invalid(vec![FieldError::new("url", "invalid_target", "an absolute http(s) URL and a method")])
        })?;
        let rules = &self.core.cfg.forward_auth.rules;
        if !target.canonical {
            let why = "the path has dot or empty segments, encoded slashes, backslashes or `;`: the \
                       application might read it otherwise than the rules, so it is refused";
            return Ok(Explanation {
                rule: None,
                rule_text: None,
                decision: Decision::Forbidden.as_str().into(),
                why: why.into(),
            });
        }
        let rule = rule_for(rules, &target, ip);
        let user = match login {
            Some(l) => {
                let who = l.to_owned();
                Some(self.core.db(move |s| s.read(|tx| find_account(tx, &who))).await?)
            }
            None => None,
        };
        let granted = user.as_ref().map(|u| self.granted(rule, u)).unwrap_or_default();
        let subject = user.as_ref().map(|u| Subject { roles: &u.roles, granted: &granted, multi_factor });
        let (decision, mut why) = match &user {
            Some(u) if !u.is_active() => (Decision::SignIn, "the account is not active: it cannot sign in".into()),
            _ => judge(rule, subject.as_ref()),
        };
        if rule.is_none() && ip.is_none() && rules.iter().any(|r| !r.networks.is_empty()) {
            why.push_str(" (rules with networks match no request without --from)");
        }
        let index = rule.and_then(|r| rules.iter().position(|x| std::ptr::eq(x, r)));
        Ok(Explanation { rule: index, rule_text: rule.map(describe), decision: decision.as_str().into(), why })
    }

    /// The user, session and its methods, from memory where they were read lately.
    async fn who(&self, cookie: Option<&str>, bearer: Option<&str>) -> Result<Option<(User, Uuid, Vec<String>)>> {
        if let Some(b) = self.provider.forwarded(cookie).await? {
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

    /// Where the hosted login may send a user back to for `rd`: the URL as parsed, when it is on
    /// a host the rules cover, over https unless that rule allows plain http.
    pub fn return_to(&self, rd: &str) -> Option<String> {
        let target = Target::parse(rd, "GET")?;
        let rules = &self.core.cfg.forward_auth.rules;
        rules
            .iter()
            .any(|r| host_matches(&r.host, &target.host) && scheme_allowed(r, &target.scheme))
            .then_some(target.url)
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
    fn a_path_that_could_be_read_two_ways_is_not_canonical() {
        for ok in ["/", "/notes", "/notes/7/", "/a%20b", "/caf%C3%A9", "/a.b/..c/d..", "/x?y=/../z", "/q#/../f"] {
            let t = target(&format!("https://app.test{ok}"));
            assert!(t.canonical, "{ok}");
        }
        for bad in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/%2E./admin",
            "/public//../admin",
            "/admin/..%2Fpublic",
            "/public%2fadmin",
            "/public%5Cadmin",
            "/public\\..\\admin",
            "/public/..;/admin",
            "/admin;x/users",
            "/a/./b",
            "/a//b",
            "/a/%00",
            "/a/%FF",
        ] {
            let t = target(&format!("https://app.test{bad}"));
            assert!(!t.canonical, "{bad}");
        }
        // The raw path, not the URL parser's: `&` is an ordinary character.
        let t = target("https://app.test/public&/x");
        assert_eq!((t.path.as_str(), normal_path(&t.path).as_str()), ("/public&/x", "/public&/x"));
        // One trailing dot on the host is the same host.
        assert_eq!(target("https://App.Test./x").host, "app.test");
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
    fn a_rule_behind_one_that_takes_all_its_requests_is_reported() {
        let mut admin = rule("app.example.com", &["/admin"], Policy::SignedIn);
        admin.roles = vec!["admin".into()];
        let mut get_only = rule("*.example.com", &["/api"], Policy::Bypass);
        get_only.methods = vec!["GET".into()];
        let rules = [
            rule("*.example.com", &["/public"], Policy::Bypass),
            rule("app.example.com", &["/public/img"], Policy::Deny),
            admin,
            rule("app.example.com", &["/admin/users"], Policy::SignedIn),
            rule("app.example.com", &["/administration"], Policy::SignedIn),
            get_only,
            rule("app.example.com", &["/api"], Policy::SignedIn),
            rule("app.example.com", &[], Policy::SignedIn),
            rule("app.example.com", &["/late"], Policy::Deny),
            rule("*.app.example.com", &[], Policy::Deny),
            rule("*.example.com", &[], Policy::SignedIn),
            rule("x.app.example.com", &[], Policy::Deny),
        ];
        assert_eq!(shadowed_rules(&rules), vec![(1, 0), (3, 2), (8, 7), (11, 9)]);
        // Plain http is a wider rule's only, never a narrower's.
        let mut http = rule("app.example.com", &[], Policy::Bypass);
        http.scheme = Some("http".into());
        assert_eq!(shadowed_rules(&[rule("app.example.com", &[], Policy::Deny), http.clone()]), vec![]);
        assert_eq!(shadowed_rules(&[http, rule("app.example.com", &[], Policy::Deny)]), vec![(1, 0)]);
    }

    #[test]
    fn the_judgement_names_its_reason() {
        let mut admin = rule("app.test", &[], Policy::Mfa);
        admin.roles = vec!["admin".into()];
        admin.permissions = vec!["users:read".into()];
        let roles = ["admin".to_owned()];
        let all = ["users:*".to_owned()];
        let s = |multi_factor| Subject { roles: &roles, granted: &all, multi_factor };
        assert_eq!(judge(Some(&admin), Some(&s(true))).0, Decision::Allow);
        let (d, why) = judge(Some(&admin), Some(&s(false)));
        assert_eq!(d, Decision::SignIn);
        assert!(why.contains("two factors"), "{why}");
        let (d, why) = judge(Some(&admin), None);
        assert_eq!(d, Decision::SignIn);
        assert!(why.contains("not signed in"), "{why}");
        let other = ["user".to_owned()];
        let (d, why) = judge(Some(&admin), Some(&Subject { roles: &other, granted: &all, multi_factor: true }));
        assert_eq!(d, Decision::Forbidden);
        assert!(why.contains("[admin]") && why.contains("[user]"), "{why}");
        let (d, why) = judge(Some(&admin), Some(&Subject { roles: &roles, granted: &[], multi_factor: true }));
        assert_eq!(d, Decision::Forbidden);
        assert!(why.contains("users:read"), "{why}");
        assert_eq!(judge(None, Some(&s(true))).0, Decision::Forbidden);
        assert_eq!(judge(Some(&rule("a.test", &[], Policy::Bypass)), None).0, Decision::Allow);
        assert_eq!(judge(Some(&rule("a.test", &[], Policy::Deny)), Some(&s(true))).0, Decision::Forbidden);
    }

    #[test]
    fn methods_and_networks_narrow_a_rule() {
        let mut r = rule("app.test", &[], Policy::Bypass);
        r.methods = vec!["GET".into()];
        r.networks = vec!["10.0.0.0/8".parse().unwrap()];
        let rules = [r];
        let t = target("https://app.test/");
        assert!(rule_for(&rules, &t, Some("10.1.2.3".parse().unwrap())).is_some());
        assert!(rule_for(&rules, &t, Some("192.168.1.1".parse().unwrap())).is_none());
        assert!(rule_for(&rules, &t, None).is_none());
        let post = Target::parse("https://app.test/", "POST").unwrap();
        assert!(rule_for(&rules, &post, Some("10.1.2.3".parse().unwrap())).is_none());
        // Methods are compared as sent: `get` is not `GET`.
        let lower = Target::parse("https://app.test/", "get").unwrap();
        assert!(rule_for(&rules, &lower, Some("10.1.2.3".parse().unwrap())).is_none());
    }
}
