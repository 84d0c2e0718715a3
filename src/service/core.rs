//! What every area shares: the configuration, the store, the keys and roles in memory, the
//! revocations, the limits, the metrics, the data key, passwords, the audit sink and the
//! senders. Each area service holds an `Arc<Core>`; areas do not call one another through it.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock},
};

use super::{audit, audit_sink::AuditSink, db::Db};
use crate::{
    cache::{Expiring, RevocationCache},
    config::Config,
    error::{Error, Result},
    model::{Role, SigningKeyRecord, now},
    security::{
        captcha::CaptchaVerifier,
        limits::RateLimiter,
        password::{PasswordHasher, PasswordPolicy},
        pow::ChallengeIssuer,
        sealed::DataKey,
        throttle::Throttle,
    },
};

/// The shared core under every area service, opened once per process.
pub struct Core {
    pub(super) cfg: Arc<Config>,
    pub(super) store: Db,
    pub(super) hasher: PasswordHasher,
    pub(super) policy: PasswordPolicy,
    pub(super) keys: RwLock<Arc<crate::security::key_ring::KeyRing>>,
    pub(super) roles: RwLock<Arc<HashMap<String, Role>>>,
    pub(super) revocations: Arc<RevocationCache>,
    pub(super) metrics: crate::metrics::Metrics,
    /// Access tokens whose signature and claims verified, by hash of the whole token. Emptied
    /// whenever the key ring changes.
    pub(super) verified: Expiring<[u8; 32], Arc<crate::security::jws::AccessClaims>>,
    pub(super) limiter: RateLimiter,
    pub(super) throttle: Throttle,
    pub(super) challenges: ChallengeIssuer,
    /// Values taken once (passkey ceremonies): this node's memory, or Redis shared by every node.
    pub(super) stash: Arc<dyn crate::cache::Stash>,
    /// Spent challenges every node knows of (Redis), beside this node's own memory.
    pub(super) replay: Option<Arc<dyn crate::cache::Replay>>,
    /// Set when `challenge.kind` is a CAPTCHA provider.
    pub(super) captcha: Option<CaptchaVerifier>,
    /// Throttles audited lately, so that a flood leaves one trace a minute.
    pub(super) throttle_reported: Expiring<String, ()>,
    pub(super) audit_sink: AuditSink,
    pub(super) outbound: crate::messages::Outbound,
    pub(super) data_key: Arc<DataKey>,
    /// `http(s)://<address>` of the bound listener, for links when `server.public_url` is unset.
    pub(super) bound_url: OnceLock<String>,
}

impl Core {
    /// Where the server listens, once bound: the base of links when `server.public_url` is
    /// unset (`server.bind` may name port 0).
    pub(super) fn set_bound_address(&self, addr: std::net::SocketAddr) {
        let scheme = if self.cfg.server.tls.is_enabled() { "https" } else { "http" };
        let _ = self.bound_url.set(format!("{scheme}://{addr}"));
    }

    /// The base of every link in a message: `server.public_url`, never a request's Host.
    pub(super) fn public_url(&self) -> String {
        match (&self.cfg.server.public_url, self.bound_url.get()) {
            (None, Some(bound)) => bound.clone(),
            _ => self.cfg.public_url(),
        }
    }

    /// Runs blocking store work off the async runtime, for the request being served.
    pub(super) async fn db<T: Send + 'static>(&self, f: impl FnOnce(&Db) -> Result<T> + Send + 'static) -> Result<T> {
        let store = self.store.serving(audit::current());
        // Storage spans belong to the request's (telemetry).
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&store)))
            .await
            .map_err(|e| Error::Internal(format!("storage task failed: {e}")))?
    }

    /// When every access token signed until now will have expired.
    pub(super) fn last_token_expiry(&self) -> crate::model::UnixTime {
        now() + self.cfg.tokens.access_ttl.as_secs() + self.cfg.tokens.leeway.as_secs() + 1
    }

    pub(super) fn roles_snapshot(&self) -> Arc<HashMap<String, Role>> {
        self.roles.read().map(|g| Arc::clone(&g)).unwrap_or_default()
    }

    pub(super) fn has_permission(&self, roles: &[String], permission: &str) -> bool {
        let known = self.roles_snapshot();
        roles.iter().filter_map(|r| known.get(r)).any(|r| r.grants(permission))
    }

    pub(super) fn check_roles_exist(&self, roles: &[String]) -> Result<()> {
        let known = self.roles_snapshot();
        match roles.iter().find(|r| !known.contains_key(*r)) {
            Some(r) => Err(Error::UnknownRole(r.clone())),
            None => Ok(()),
        }
    }

    /// Reads the roles again (they changed here, or on another node).
    pub(super) async fn reload_roles(&self) -> Result<()> {
        let roles = self.db(|s| s.read(|tx| tx.roles().map_err(Error::from))).await?;
        let map: HashMap<String, Role> = roles.into_iter().map(|r| (r.name.clone(), r)).collect();
        if let Ok(mut g) = self.roles.write() {
            *g = Arc::new(map);
        }
        Ok(())
    }

    /// What signs and verifies now.
    pub(super) fn key_ring(&self) -> Arc<crate::security::key_ring::KeyRing> {
        self.keys.read().map(|g| Arc::clone(&g)).unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Signs and verifies with these keys from now on.
    pub(super) fn install_keys(&self, records: &[SigningKeyRecord]) -> Result<()> {
        let ring = crate::security::key_ring::KeyRing::from_records(records, self.cfg.tokens.algorithm)
            .map_err(|e| Error::Internal(e.to_string()))?;
        if let Ok(mut g) = self.keys.write() {
            *g = Arc::new(ring);
        }
        // What verified under the old key set is checked again under the new one.
        self.verified.clear();
        Ok(())
    }

    /// The per-account rate limit of a route class.
    pub(super) async fn check_account_limit(
        &self,
        class: crate::config::RouteClass,
        account: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<()> {
        let rl = &self.cfg.rate_limit;
        if !rl.enabled {
            return Ok(());
        }
        let limit = rl.route(class).per_account;
        match self.limiter.check_account(class, account, &limit).await {
            Some(d) if !d.allowed => {
                self.metrics
                    .rate_limited
                    .get_or_create(&crate::metrics::RouteLabels { route: class.as_str().into() })
                    .inc();
                security_event("rate_limited", ip);
                self.audit_throttle(class.as_str(), ip, "rate_limited");
                Err(Error::RateLimited(d.retry_after_secs))
            }
            _ => Ok(()),
        }
    }

    /// Reads the signing keys again (another node rotated them).
    pub(super) async fn reload_keys(&self) -> Result<()> {
        let records = self.db(|s| s.read(|tx| tx.signing_keys().map_err(Error::from))).await?;
        self.install_keys(&records)
    }

    /// What per-address limits and counters key on: the address, or its IPv6 prefix.
    pub(super) fn ip_key(&self, ip: std::net::IpAddr) -> std::net::IpAddr {
        crate::security::limits::ip_key(ip, self.cfg.rate_limit.ipv6_prefix)
    }

    /// A user as stored now, for decisions (never the cache).
    pub(super) async fn user(&self, id: uuid::Uuid) -> Result<crate::model::User> {
        self.db(move |s| s.read(|tx| tx.user(id).map_err(Error::from))).await?.ok_or(Error::NotFound("user"))
    }

    /// An event in the current context, for [`Self::audit_later`].
    pub(super) fn audit_event(
        &self,
        event: &str,
        success: bool,
        subject: Option<uuid::Uuid>,
        session_id: Option<uuid::Uuid>,
        details: serde_json::Value,
    ) -> crate::model::AuditEvent {
        audit::event(&audit::current(), event, success, subject, session_id, details)
    }

    /// Records an event that has no transaction of its own.
    pub(super) fn audit_later(&self, e: crate::model::AuditEvent) {
        self.audit_sink.push(e);
    }

    /// Audits a throttle, at most once a minute per address and kind, so a flood leaves a trace
    /// without flooding the audit log.
    pub(super) fn audit_throttle(&self, class: &str, ip: Option<std::net::IpAddr>, reason: &str) {
        let key = format!("{reason}:{class}:{}", ip.map(|i| i.to_string()).unwrap_or_default());
        if self.throttle_reported.contains(&key) {
            return;
        }
        self.throttle_reported.insert(key, ());
        self.audit_later(self.audit_event(
            "auth.throttled",
            false,
            None,
            None,
            serde_json::json!({"reason": reason, "route": class}),
        ));
    }
}

/// Words a password must not contain: the account's own names.
pub(super) fn user_context(u: &crate::model::User) -> Vec<&str> {
    let mut words = Vec::new();
    if let Some(e) = &u.email {
        words.push(e.split('@').next().unwrap_or(e));
    }
    if let Some(n) = &u.username {
        words.push(n.as_str());
    }
    words
}

/// One stable line per failed or throttled attempt, for fail2ban and friends:
/// `auth_event=<kind> ip=<client ip>`.
pub(crate) fn security_event(kind: &str, ip: Option<std::net::IpAddr>) {
    match ip {
        Some(ip) => tracing::warn!(target: "authd::security", "auth_event={kind} ip={ip}"),
        None => tracing::warn!(target: "authd::security", "auth_event={kind} ip=-"),
    }
}

/// Finds an account by id, email, phone or username.
pub(super) fn find_account(tx: &(impl crate::store::UserReads + ?Sized), who: &str) -> Result<crate::model::User> {
    let found = match uuid::Uuid::parse_str(who.trim()) {
        Ok(id) => tx.user(id)?,
        Err(_) => match crate::security::identifiers::Login::parse(who) {
            Ok(login) => tx.user_by_login(login.name())?,
            Err(_) => None,
        },
    };
    found.ok_or(Error::NotFound("user"))
}
