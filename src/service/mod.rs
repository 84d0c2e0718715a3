//! The rules. Both the HTTP handlers and the CLI call these; nothing here knows HTTP or redb.

mod accounts;
pub mod audit;
mod audit_log;
mod audit_sink;
mod authority;
pub mod backups;
mod clients;
mod console;
mod core;
mod db;
mod forward_auth;
mod id_tokens;
mod issuing;
mod keys;
mod mfa;
mod one_time;
mod outbox;
mod passkeys;
mod provider;
mod recovery;
mod roles;
mod sessions;
mod tokens;
mod upstream;
mod verification;
mod webhooks;

use std::sync::{Arc, RwLock};

pub use crate::security::key_ring::KeyRing;
pub use accounts::{Accounts, NewAccount, UserFilter, UserPage, UserPatch};
pub use audit_log::AuditLog;
pub use authority::Principal;
pub use backups::Backups;
pub use clients::{ClientEdit, ClientInfo as ServiceClientInfo, Clients, NewClient, Presented};
pub use console::{Activity, CONSOLE_PERMISSIONS, Console, Overview, Viewer};
pub use core::Core;
use db::Db;
pub use forward_auth::{
    Explanation as ForwardExplanation, ForwardAuth, Identity as ForwardIdentity, Target as ForwardTarget, Verdict,
    describe as describe_rule, shadowed_rules,
};
pub use issuing::{ClientInfo, TokenPair};
pub use keys::{KeyInfo, Keys};
pub use mfa::{SecondFactor, SecondFactors, TotpEnrolment};
pub use outbox::Outbox;
pub use passkeys::{Enroller, Passkeys};
pub use provider::{Authorized, Grant, Issued, LoggedOut, Params, Pending, Provider, Refused, SignIn, params_of};
pub use recovery::{EnrolmentToken, RecoverProof, Recovery, ResetProof};
pub use roles::{Decision as PolicyDecision, Roles};
pub use sessions::{ChallengeSolution, Sessions};
pub use tokens::{AuthContext, Introspection, Tokens};
pub use upstream::{CallbackParams, FreshLogin, ProviderInfo, Redirect, Upstream};
pub use verification::{Confirmed, MeChange, Verification, VerifyProof};
pub use webhooks::{DeliveryCounts, WebhookInfo, Webhooks};

use crate::{
    cache::{Expiring, RevocationCache},
    config::{ChallengeKind, Config},
    error::{Error, Result},
    model::{BUILTIN_ROLES, Role, now, now_millis},
    security::{
        captcha::CaptchaVerifier,
        limits::{Decision, RateLimiter, RouteClass},
        password::{PasswordHasher, PasswordPolicy},
        pow::{Challenge, ChallengeIssuer},
        throttle::Throttle,
    },
    store::{Change, Store, StoreError},
};

/// Whether the node should be sent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The database does not answer.
    Unavailable,
    /// Stopping: still serving, but a balancer should take the node out.
    Draining,
}

/// Everything the rules need, opened once per process: one service per area over a shared
/// core, and what concerns the node as a whole (readiness, metrics, caches, changes from other
/// nodes).
pub struct AuthService {
    core: Arc<Core>,
    /// Access tokens: the per-request check and introspection.
    pub tokens: Tokens,
    /// Signing in and out, refresh, and the user's sessions.
    pub sessions: Sessions,
    /// The TOTP second factor.
    pub factors: SecondFactors,
    /// Registration and the administrator's user commands.
    pub accounts: Accounts,
    /// Confirming email addresses and phone numbers.
    pub verification: Verification,
    /// Password reset.
    pub recovery: Recovery,
    /// Login with external providers, and linked identities.
    pub upstream: Upstream,
    /// Email, SMS and webhook deliveries.
    pub outbox: Outbox,
    /// Webhook endpoints added at run time.
    pub webhooks: Webhooks,
    /// The audit log as read.
    pub audit: AuditLog,
    /// Signing keys.
    pub keys: Keys,
    /// Clients: relying parties and backends.
    pub clients: Clients,
    /// The OpenID Provider: authorization, the hosted login's session, tokens, logout.
    pub provider: Arc<Provider>,
    /// Passkeys: enrolment, sign-in, the user's list.
    pub passkeys: Passkeys,
    /// Forward-auth: the access rules a reverse proxy asks about.
    pub forward_auth: ForwardAuth,
    /// Roles and what they grant.
    pub roles: Roles,
    /// The admin console's rules.
    pub console: Console,
    /// Backups of the embedded database.
    pub backups: Backups,
    /// Set on SIGTERM: readiness says no while the node still serves.
    draining: std::sync::atomic::AtomicBool,
}

impl AuthService {
    /// Opens the database, seeds the built-in roles and a first signing key, and loads keys,
    /// roles and live revocations into memory.
    pub async fn open(mut cfg: Config) -> Result<Arc<Self>, StartError> {
        check_config(&cfg).map_err(StartError::Config)?;
        if cfg.tokens.issuer.trim().is_empty() {
            cfg.tokens.issuer = cfg.public_url();
        }
        let cfg = Arc::new(cfg);
        let storage = cfg.storage.clone();
        let alg = cfg.tokens.algorithm;
        let webhooks: Vec<crate::model::WebhookEndpoint> = cfg
            .webhooks
            .iter()
            .map(|w| crate::model::WebhookEndpoint { url: w.url.clone(), events: w.events.clone() })
            .collect();
        let revocations = Arc::new(RevocationCache::new());
        let cache = Arc::clone(&revocations);
        let revocation_ttl = cfg.tokens.access_ttl.as_secs() + cfg.tokens.leeway.as_secs() + 1;
        let (store, ring, roles, revs, challenge_key) =
            tokio::task::spawn_blocking(move || -> Result<_, StartError> {
                let store = Db::new(Store::open(&storage)?, webhooks, cache, revocation_ttl);
                let (records, roles, revs, challenge_key) = store.write(|tx| -> Result<_, StartError> {
                    let mut roles = tx.roles()?;
                    for (name, perms) in BUILTIN_ROLES {
                        if !roles.iter().any(|r| r.name == *name) {
                            let role = Role {
                                name: (*name).into(),
                                permissions: perms.iter().map(|p| (*p).into()).collect(),
                                builtin: true,
                                require_mfa: false,
                            };
                            tx.put_role(&role)?;
                            roles.push(role);
                        }
                    }
                    let records = keys::ensure_active_key(tx)?;
                    let revs = tx.revocations()?;
                    let challenge_key =
                        tx.ensure_secret("challenge", &crate::security::random::random_bytes::<32>())?;
                    Ok((records, roles, revs, challenge_key))
                })?;
                let ring = KeyRing::from_records(&records, alg).map_err(|e| StartError::Keys(e.to_string()))?;
                Ok((store, ring, roles, revs, challenge_key))
            })
            .await
            .map_err(|e| StartError::Keys(e.to_string()))??;

        let hasher = PasswordHasher::start(
            cfg.passwords.argon2,
            cfg.hash_workers(),
            cfg.passwords.hash_queue,
            cfg.passwords.release_memory_after.0,
        )
        .map_err(|e| StartError::Keys(e.to_string()))?;
        let captcha = match cfg.challenge.kind.default_siteverify_url() {
            None => None,
            Some(default_url) => {
                let url = cfg.challenge.siteverify_url.as_deref().unwrap_or(default_url);
                let secret = cfg.challenge.secret.as_ref().map(|s| s.0.as_str()).unwrap_or_default();
                Some(CaptchaVerifier::new(url, secret).map_err(|e| StartError::Keys(e.to_string()))?)
            }
        };
        let mut limiter = RateLimiter::new(cfg.rate_limit.max_entries, std::time::Duration::from_secs(3600));
        // A correct password waits for a slot held by attempts in flight, within the request's time.
        let mut throttle = Throttle::new(&cfg.brute_force).patience(cfg.server.request_timeout.0 / 2);
        let mut replay: Option<Arc<dyn crate::cache::Replay>> = None;
        let mut stash: Arc<dyn crate::cache::Stash> =
            Arc::new(crate::cache::MemoryStash::new(100_000, std::time::Duration::from_secs(3600)));
        if cfg.cache.backend == crate::config::CacheBackend::Redis {
            let url = cfg.cache.url.as_ref().map(|u| u.0.as_str()).unwrap_or_default();
            let redis = Arc::new(
                crate::cache::Redis::connect(url, cfg.cache.timeout.0)
                    .await
                    .map_err(|e| StartError::Cache(e.to_string()))?,
            );
            limiter = limiter.shared(redis.clone());
            throttle = throttle.shared(redis.clone());
            stash = redis.clone();
            replay = Some(redis);
        }
        let raw_key = match cfg.data_key() {
            Some(k) => k,
            None => {
                let path = cfg.storage.path.with_extension("key");
                crate::security::sealed::load_or_create(&path)
                    .map_err(|e| StartError::Config(format!("security.data_key: key file {}: {e}", path.display())))?
            }
        };
        let data_key = Arc::new(
            crate::security::sealed::DataKey::new(&raw_key)
                .map_err(|e| StartError::Config(format!("security.data_key: {e}")))?,
        );
        let outbound = crate::messages::Outbound {
            templates: crate::messages::Templates::load(cfg.messages.templates_dir.as_deref())
                .map_err(StartError::Config)?,
            email: crate::messages::EmailSender::new(&cfg.email).map_err(StartError::Config)?,
            sms: crate::messages::SmsSender::new(&cfg.sms).map_err(StartError::Config)?,
            webhooks: crate::messages::WebhookSender::new(&cfg.webhook_delivery),
        };
        let providers =
            crate::upstream::Providers::new(&cfg.oauth.providers, cfg.oauth.timeout.0).map_err(StartError::Config)?;
        let verified = Expiring::weighed(
            u64::try_from(cfg.tokens.verified_cache_mb).unwrap_or(u64::MAX) << 20,
            |_, claims: &Arc<crate::security::jws::AccessClaims>| claims.approximate_size(),
            cfg.tokens.access_ttl.0 + cfg.tokens.leeway.0,
            cfg.tokens.verified_cache_idle.0,
        );
        let metrics = crate::metrics::Metrics::new();
        let batches = metrics.commit_batches.clone();
        #[allow(clippy::cast_precision_loss)]
        store.observe_commit_batches(move |n| batches.observe(n as f64));
        let waits = metrics.argon2_waits.clone();
        hasher.observe_waits(move |d| waits.observe(d.as_secs_f64()));
        for r in &revs {
            revocations.apply(r);
        }
        let core = Arc::new(Core {
            limiter,
            throttle,
            challenges: ChallengeIssuer::new(&challenge_key, cfg.challenge.difficulty, cfg.challenge.ttl.0),
            replay,
            stash,
            captcha,
            audit_sink: audit_sink::AuditSink::start(store.clone()),
            outbound,
            data_key,
            bound_url: std::sync::OnceLock::new(),
            throttle_reported: Expiring::new(10_000, std::time::Duration::from_secs(60)),
            policy: PasswordPolicy::new(&cfg.passwords),
            cfg: Arc::clone(&cfg),
            store,
            hasher,
            keys: RwLock::new(Arc::new(ring)),
            roles: RwLock::new(Arc::new(roles.into_iter().map(|r| (r.name.clone(), r)).collect())),
            revocations,
            verified,
            metrics,
        });
        Ok(Arc::new(Self::assemble(core, providers)))
    }

    /// Builds each area over the core; an area gets the others it relies on, never this node.
    fn assemble(core: Arc<Core>, providers: crate::upstream::Providers) -> Self {
        let c = || Arc::clone(&core);
        let tokens = Tokens::new(c());
        let outbox = Outbox::new(c());
        let opener = issuing::Opener::new(c(), outbox.clone());
        let factors = SecondFactors::new(c(), opener.clone());
        let sessions = Sessions::new(c(), opener.clone(), factors.clone());
        let passkeys = Passkeys::new(c(), opener, sessions.clone(), outbox.clone());
        let verification = Verification::new(c(), outbox.clone());
        let recovery = Recovery::new(c(), outbox.clone());
        let provider = Arc::new(Provider::new(c(), sessions.clone(), factors.clone(), tokens.clone()));
        Self {
            accounts: Accounts::new(c(), outbox.clone(), verification.clone(), recovery.clone(), sessions.clone()),
            upstream: Upstream::new(c(), Arc::new(providers), sessions.clone(), outbox.clone()),
            roles: Roles::new(c(), tokens.clone()),
            keys: Keys::new(c()),
            clients: Clients::new(c()),
            provider: Arc::clone(&provider),
            forward_auth: ForwardAuth::new(c(), Arc::clone(&provider), tokens.clone()),
            console: Console::new(c(), provider),
            backups: Backups::new(c()),
            webhooks: Webhooks::new(c()),
            audit: AuditLog::new(c()),
            tokens,
            passkeys,
            sessions,
            factors,
            verification,
            recovery,
            outbox,
            core,
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &Config {
        &self.core.cfg
    }

    /// Writes what waits in memory (queued audit events), before the process ends.
    pub async fn flush(&self) {
        self.core.audit_sink.flush().await;
    }

    /// Where the server listens, once bound: the base of links when `server.public_url` is
    /// unset (`server.bind` may name port 0).
    pub fn set_bound_address(&self, addr: std::net::SocketAddr) {
        self.core.set_bound_address(addr);
    }

    /// The base of every link in a message: `server.public_url`, never a request's Host.
    pub fn public_url(&self) -> String {
        self.core.public_url()
    }

    /// Keeps this node's in-memory state (revocations, keys, roles, cached users and clients) in step with what other
    /// nodes, or the CLI, commit to a shared database. Nothing to do for an embedded one.
    pub fn follow_changes(self: &Arc<Self>) {
        let Some(mut feed) = self.core.store.changes() else { return };
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(change) = feed.recv().await {
                let Some(svc) = node.upgrade() else { return };
                if let Err(e) = svc.apply_change(change).await {
                    tracing::warn!(error = %e, "could not apply a change from another node");
                }
            }
        });
    }

    async fn apply_change(&self, change: Change) -> Result<()> {
        match change {
            Change::Revoked(r) => {
                self.core.revocations.apply(&r);
                Ok(())
            }
            Change::Keys => self.core.reload_keys().await,
            Change::Roles => self.core.reload_roles().await,
            Change::User(id) => {
                self.core.store.forget_users(Some(id));
                Ok(())
            }
            Change::Client(id) => {
                self.core.store.forget_clients(Some(id));
                Ok(())
            }
            Change::Resync => {
                self.core.store.forget_users(None);
                self.core.store.forget_clients(None);
                let revs = self.core.db(|s| s.read(|tx| tx.revocations().map_err(Error::from))).await?;
                for r in &revs {
                    self.core.revocations.apply(r);
                }
                self.core.reload_keys().await?;
                self.core.reload_roles().await
            }
        }
    }

    /// Is the storage answering?
    pub async fn is_ready(&self) -> Readiness {
        if self.draining.load(std::sync::atomic::Ordering::Acquire) {
            return Readiness::Draining;
        }
        match self.core.db(|s| s.read(|tx| tx.roles().map_err(Error::from)).map(|_| ())).await {
            Ok(()) => Readiness::Ready,
            Err(_) => Readiness::Unavailable,
        }
    }

    /// The node is stopping: readiness says so from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Drops expired sessions, refresh-token hashes and revocations, and webhook deliveries
    /// finished more than a week ago.
    pub async fn prune(&self) -> Result<usize> {
        let week_ago = now_millis().saturating_sub(7 * 24 * 3600 * 1000);
        self.core
            .db(move |s| {
                s.write(|tx| Ok(tx.prune(now())? + tx.prune_deliveries(week_ago)? + tx.prune_one_time(now())?))
            })
            .await
    }
}

impl AuthService {
    /// The per-IP rate limit of a route class; `None` when limits are off.
    pub async fn check_ip_limit(&self, class: RouteClass, ip: std::net::IpAddr) -> Option<Decision> {
        let rl = &self.core.cfg.rate_limit;
        if !rl.enabled {
            return None;
        }
        let limit = rl.route(class).per_ip;
        let d = self.core.limiter.check_ip(class, self.core.ip_key(ip), &limit).await?;
        if !d.allowed {
            self.core
                .metrics
                .rate_limited
                .get_or_create(&crate::metrics::RouteLabels { route: class.as_str().into() })
                .inc();
            core::security_event("rate_limited", Some(ip));
            self.core.audit_throttle(class.as_str(), Some(ip), "rate_limited");
        }
        Some(d)
    }

    /// Rate-limit checks this node answered alone because the shared cache did not answer.
    pub fn rate_limit_fallbacks(&self) -> u64 {
        self.core.limiter.fallbacks()
    }

    /// The metrics, with the gauges read now (caches, the outbox backlog).
    pub async fn metrics_text(&self) -> Result<String> {
        use crate::metrics::{KindLabels, as_gauge};
        let deliveries =
            self.core.db(|s| s.read(|tx| tx.due_deliveries(u64::MAX, 100_000).map_err(Error::from))).await?;
        let m = &self.core.metrics;
        for channel in crate::model::Channel::ALL {
            let n = deliveries.iter().filter(|d| d.channel == channel).count() as u64;
            m.outbox_pending.get_or_create(&KindLabels { kind: channel.as_str().into() }).set(as_gauge(n));
        }
        let (sessions, users) = self.core.revocations.len();
        m.revocations.get_or_create(&KindLabels { kind: "session".into() }).set(as_gauge(sessions));
        m.revocations.get_or_create(&KindLabels { kind: "user".into() }).set(as_gauge(users));
        // The limiter keeps the count; the counter catches up with it.
        let fallbacks = self.core.limiter.fallbacks();
        m.rate_limit_fallbacks.inc_by(fallbacks.saturating_sub(m.rate_limit_fallbacks.get()));
        m.rate_limit_entries.set(as_gauge(self.core.limiter.entry_count()));
        m.verified_tokens.set(as_gauge(self.verified_tokens()));
        m.argon2_queue.set(as_gauge(self.core.hasher.queued() as u64));
        m.argon2_memory.set(as_gauge(self.core.hasher.memory_bytes() as u64));
        Ok(m.encode())
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.core.metrics
    }

    /// Entries in the cache of verified access tokens.
    pub fn verified_tokens(&self) -> u64 {
        self.core.verified.len()
    }

    /// Drops every cached entry past its time, so that an idle server does not hold what its
    /// last burst left.
    pub fn sweep_caches(&self) {
        self.core.verified.sweep();
        self.core.throttle_reported.sweep();
        self.outbox.sweep();
        self.upstream.sweep();
        self.core.revocations.sweep();
        self.core.limiter.sweep();
        self.core.throttle.sweep();
        self.core.challenges.sweep();
        self.core.store.sweep();
    }

    /// Buckets currently held by the rate limiter (bounded by `rate_limit.max_entries`).
    pub fn rate_limit_entries(&self) -> u64 {
        self.core.limiter.entry_count()
    }

    /// What a client must solve after repeated failures: a fresh proof-of-work challenge, or
    /// the CAPTCHA to show.
    pub fn new_challenge(&self) -> ChallengeOffer {
        let c = &self.core.cfg.challenge;
        match c.kind {
            ChallengeKind::Pow => ChallengeOffer::Pow(self.core.challenges.issue()),
            kind => ChallengeOffer::Captcha { kind: kind.as_str(), site_key: c.site_key.clone() },
        }
    }
}

/// The answer of `POST /v1/auth/challenge`.
#[derive(Debug, Clone)]
pub enum ChallengeOffer {
    Pow(Challenge),
    Captcha { kind: &'static str, site_key: Option<String> },
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(String),
    #[error("cache: {0}")]
    Cache(String),
    #[error("{0}")]
    Config(String),
}

/// What a configuration must satisfy beyond its own keys: the services' rules about them.
/// Checked at start and by `authd config check`.
pub fn check_config(cfg: &Config) -> std::result::Result<(), String> {
    for (i, w) in cfg.webhooks.iter().enumerate() {
        if let Err(why) = crate::security::targets::check_url(&w.url, cfg.webhook_delivery.allow_private_targets) {
            return Err(format!(
                "config key `webhooks[{i}].url`: {why} (webhook_delivery.allow_private_targets allows private ones)"
            ));
        }
    }
    Ok(())
}

impl StartError {
    /// Another process holds the embedded database.
    pub fn is_database_in_use(&self) -> bool {
        matches!(self, StartError::Store(StoreError::Locked))
    }
}

/// Copies every record of a stopped server's redb file into the database `to` describes, and
/// counts each table on both sides.
pub fn copy_database(
    from: &std::path::Path,
    to: &crate::config::StorageConfig,
) -> std::result::Result<Vec<crate::store::Tally>, String> {
    let source = Store::open_redb(from)
        .map_err(|e| format!("cannot open {}: {e} (stop the server that uses it first)", from.display()))?;
    let target = Store::open(to).map_err(|e| format!("cannot open the target: {e}"))?;
    crate::store::copy_all(&source, &target).map_err(|e| e.to_string())
}

/// Why the data directory of an embedded database is unsafe (not private, say), if it is.
pub fn data_dir_problem(path: &std::path::Path) -> Option<String> {
    crate::store::data_dir::check(path).err().map(|e| e.to_string())
}

impl From<Error> for StartError {
    fn from(e: Error) -> Self {
        match e {
            Error::Storage(s) => StartError::Store(s),
            other => StartError::Keys(other.to_string()),
        }
    }
}
