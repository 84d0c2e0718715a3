//! Configuration: built-in defaults ← `config.toml` ← `AUTHD_*` environment variables
//! (nested keys joined by `__`). Loaded once at start and passed down; never global.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format as _, Serialized, Toml},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod diagnose;
mod forward_auth;
mod messages;
mod oauth;

pub use forward_auth::{ForwardAuthConfig, ForwardRule, Policy};
pub use messages::{
    EmailConfig, EmailTransport, LOCALES, LinksConfig, MessagesConfig, MetricsConfig, RecoveryConfig, SecurityConfig,
    SmsConfig, SmsTransport, SmtpConfig, SmtpTls, TelemetryConfig, VerificationConfig, VerifyMode,
};
pub use oauth::{AppPkce, ClaimMapping, OauthConfig, ProviderConfig, ProviderKind};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub tokens: TokensConfig,
    pub passwords: PasswordsConfig,
    pub rate_limit: RateLimitConfig,
    pub cache: CacheConfig,
    pub brute_force: BruteForceConfig,
    pub challenge: ChallengeConfig,
    pub audit: AuditConfig,
    pub webhooks: Vec<WebhookConfig>,
    pub webhook_delivery: WebhookDeliveryConfig,
    pub log: LogConfig,
    pub admin: AdminConfig,
    pub email: EmailConfig,
    pub sms: SmsConfig,
    pub messages: MessagesConfig,
    pub verification: VerificationConfig,
    pub recovery: RecoveryConfig,
    pub links: LinksConfig,
    pub security: SecurityConfig,
    pub passkeys: PasskeysConfig,
    pub forward_auth: ForwardAuthConfig,
    pub oauth: OauthConfig,
    pub metrics: MetricsConfig,
    pub telemetry: TelemetryConfig,
}

/// The local admin socket through which the CLI reaches a running server, and the console.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The admin console at `/ui/admin`, for signed-in users who hold admin permissions.
    pub console: bool,
    /// A listener of its own for the console (`127.0.0.1:9091`), so that it stays off the public
    /// interface: set, the console answers there only.
    pub console_bind: Option<SocketAddr>,
    /// Where the socket is created; default: beside the database, `<storage.path>` with `.sock`.
    pub socket: Option<PathBuf>,
    /// Uids besides root and the server's own that may use the socket. Only when this names
    /// another uid is the socket made connectable by others (mode 0666); the peer's credentials
    /// are checked on every connection either way.
    pub allowed_uids: Vec<u32>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { console: true, console_bind: None, socket: None, allowed_uids: Vec::new() }
    }
}

/// One webhook endpoint (Standard Webhooks signing).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// `whsec_` followed by base64 of the signing key.
    pub secret: Secret,
    pub events: Vec<String>,
}

impl WebhookConfig {
    /// The HMAC key inside `secret`.
    pub fn key(&self) -> Option<Vec<u8>> {
        webhook_key(&self.secret.0)
    }
}

/// The HMAC key in a `whsec_<base64>` secret (at least 16 bytes).
pub fn webhook_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let b64 = secret.strip_prefix("whsec_")?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok().filter(|k| k.len() >= 16)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookDeliveryConfig {
    /// Keep retrying a failed delivery (exponential backoff with jitter) for this long.
    pub retry_for: HumanDuration,
    pub timeout: HumanDuration,
    /// Deliver to loopback, private, link-local and reserved addresses too. Off by default: an
    /// admin API caller could otherwise reach the host's own network (cloud metadata included).
    pub allow_private_targets: bool,
}

impl Default for WebhookDeliveryConfig {
    fn default() -> Self {
        Self {
            retry_for: HumanDuration::secs(24 * 3600),
            timeout: HumanDuration::secs(10),
            allow_private_targets: false,
        }
    }
}

/// A secret from the config: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Events older than this are pruned in the background.
    pub retention: HumanDuration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention: HumanDuration::secs(180 * 24 * 3600) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub shutdown_grace: HumanDuration,
    /// On SIGTERM, how long /readyz answers 503 while everything else is served as before, so
    /// that a balancer's health check takes the node out before its port closes.
    pub shutdown_delay: HumanDuration,
    pub request_timeout: HumanDuration,
    /// A request's headers must arrive within this (slowloris); an idle keep-alive connection
    /// is closed after it too.
    pub header_timeout: HumanDuration,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Open connections at most, in total and per client address (trusted proxies excepted).
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Peers whose `client_ip_header` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header that names the client behind a trusted proxy; no other is read.
    pub client_ip_header: ClientIpHeader,
    pub cors: CorsConfig,
    pub tls: TlsConfig,
    /// Where users reach this server (`https://auth.example.com`): the base of every link in
    /// a message, never taken from a request's Host header. Default: `http://<bind>`.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, …`, read right to left.
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`, read right to left.
    Forwarded,
    /// `X-Real-IP: client`, one address set by the proxy.
    XRealIp,
}

/// Built-in HTTPS: both PEM files, or neither (plain HTTP behind a TLS-terminating proxy).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// How often the files are compared with what is served, to pick up a renewed
    /// certificate; 0 checks only on SIGHUP.
    pub reload_check: HumanDuration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { cert: None, key: None, reload_check: HumanDuration::secs(10) }
    }
}

impl TlsConfig {
    pub fn is_enabled(&self) -> bool {
        self.cert.is_some()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins allowed to call the API from a browser (`https://app.example.com`).
    pub origins: Vec<String>,
    pub allow_credentials: bool,
}

/// `rate` requests per `per`, with bursts of up to `burst`; `rate = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub rate: u32,
    pub per: HumanDuration,
    pub burst: u32,
}

impl Limit {
    pub const fn new(rate: u32, per_secs: u64, burst: u32) -> Self {
        Self { rate, per: HumanDuration::secs(per_secs), burst }
    }
    pub fn is_off(&self) -> bool {
        self.rate == 0 || self.burst == 0
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimits {
    pub per_ip: Limit,
    #[serde(default = "Limit::off")]
    pub per_account: Limit,
}

impl Limit {
    pub const fn off() -> Self {
        Self::new(0, 60, 0)
    }
}

/// Where fast shared state (rate-limit buckets, failed-login counts) lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub backend: CacheBackend,
    /// redis: `redis://host:port/db` (or `rediss://` for TLS).
    pub url: Option<Secret>,
    /// redis: longest wait for an answer before this node falls back to its own counts.
    pub timeout: HumanDuration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { backend: CacheBackend::Memory, url: None, timeout: HumanDuration(Duration::from_millis(250)) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// In this process only (the default).
    Memory,
    /// A Redis server every node shares.
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Most buckets kept in memory, whatever the number of clients (oldest evicted first).
    pub max_entries: u64,
    /// IPv6 clients are counted by this prefix (one /64 is one subscriber), IPv4 by address.
    pub ipv6_prefix: u8,
    pub login: RouteLimits,
    /// The second step of a login (`POST /v1/auth/login/mfa`); per account = per user.
    pub mfa: RouteLimits,
    pub register: RouteLimits,
    pub refresh: RouteLimits,
    pub password: RouteLimits,
    pub general: RouteLimits,
}

impl RateLimitConfig {
    /// The limits a route class counts against.
    pub fn route(&self, class: RouteClass) -> &RouteLimits {
        match class {
            RouteClass::Login => &self.login,
            RouteClass::Mfa => &self.mfa,
            RouteClass::Register => &self.register,
            RouteClass::Refresh => &self.refresh,
            RouteClass::Password => &self.password,
            RouteClass::General => &self.general,
        }
    }
}

/// Which limits a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Login,
    Mfa,
    Register,
    Refresh,
    Password,
    General,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Login => "login",
            RouteClass::Mfa => "mfa",
            RouteClass::Register => "register",
            RouteClass::Refresh => "refresh",
            RouteClass::Password => "password",
            RouteClass::General => "general",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BruteForceConfig {
    /// Consecutive failed logins on an account before it is slowed down.
    pub free_failures: u32,
    /// First delay once `free_failures` is passed; it doubles with each further failure.
    pub base_delay: HumanDuration,
    pub max_delay: HumanDuration,
    /// Failures (on the account or from the IP) after which login needs a solved challenge.
    pub challenge_after: u32,
    /// A counter is forgotten after this long without failures.
    pub forget_after: HumanDuration,
    pub max_entries: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengeConfig {
    /// What a client solves after repeated failures: our own proof of work, or a CAPTCHA.
    pub kind: ChallengeKind,
    /// Leading zero bits the SHA-256 of a solution must have (each bit doubles the work).
    pub difficulty: u8,
    pub ttl: HumanDuration,
    /// The CAPTCHA provider's secret key (kinds other than `pow`).
    pub secret: Option<Secret>,
    /// The public site key, handed to login pages by `POST /v1/auth/challenge`.
    pub site_key: Option<String>,
    /// Where responses are verified; default: the provider's own siteverify endpoint.
    pub siteverify_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    Pow,
    Turnstile,
    Hcaptcha,
    Recaptcha,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Pow => "pow",
            ChallengeKind::Turnstile => "turnstile",
            ChallengeKind::Hcaptcha => "hcaptcha",
            ChallengeKind::Recaptcha => "recaptcha",
        }
    }

    /// The provider's verification endpoint (all three take the same form and answer `success`).
    pub fn default_siteverify_url(self) -> Option<&'static str> {
        match self {
            ChallengeKind::Pow => None,
            ChallengeKind::Turnstile => Some("https://challenges.cloudflare.com/turnstile/v0/siteverify"),
            ChallengeKind::Hcaptcha => Some("https://api.hcaptcha.com/siteverify"),
            ChallengeKind::Recaptcha => Some("https://www.google.com/recaptcha/api/siteverify"),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 100_000,
            ipv6_prefix: 64,
            login: RouteLimits { per_ip: Limit::new(20, 60, 20), per_account: Limit::new(10, 60, 10) },
            mfa: RouteLimits { per_ip: Limit::new(20, 60, 20), per_account: Limit::new(5, 60, 5) },
            register: RouteLimits { per_ip: Limit::new(10, 60, 10), per_account: Limit::off() },
            refresh: RouteLimits { per_ip: Limit::new(120, 60, 60), per_account: Limit::off() },
            password: RouteLimits { per_ip: Limit::new(10, 60, 10), per_account: Limit::new(5, 60, 5) },
            general: RouteLimits { per_ip: Limit::new(1200, 60, 300), per_account: Limit::off() },
        }
    }
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_delay: HumanDuration::secs(1),
            max_delay: HumanDuration::secs(15 * 60),
            challenge_after: 10,
            forget_after: HumanDuration::secs(3600),
            max_entries: 1_000_000,
        }
    }
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        Self {
            kind: ChallengeKind::Pow,
            difficulty: 16,
            ttl: HumanDuration::secs(300),
            secret: None,
            site_key: None,
            siteverify_url: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// redb: the database file.
    pub path: PathBuf,
    /// redb: memory for pages read from the file, in MiB.
    pub cache_mb: usize,
    /// postgres: `postgres://user:password@host:port/database`.
    pub url: Option<Secret>,
    /// postgres: connections per node.
    pub pool_size: usize,
    /// postgres: a statement running longer is cancelled.
    pub statement_timeout: HumanDuration,
    /// postgres: how long to wait for a connection.
    pub connect_timeout: HumanDuration,
    /// postgres: require TLS and verify the server's certificate.
    pub tls: bool,
    /// postgres: the CA (PEM) the server's certificate must chain to; default: the system's roots.
    pub tls_ca: Option<PathBuf>,
}

/// Where durable state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// One embedded file, nothing else to run (the default).
    Redb,
    /// A PostgreSQL database several nodes share.
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    EdDSA,
    ES256,
    /// RSA PKCS#1 v1.5 with SHA-256: what every OpenID client must accept, so ID tokens use it
    /// by default.
    RS256,
}

impl SigningAlgorithm {
    /// Every algorithm a key is kept for: one active key each.
    pub const ALL: [SigningAlgorithm; 3] = [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256, SigningAlgorithm::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::RS256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: HumanDuration,
    pub refresh_ttl: HumanDuration,
    pub session_max: HumanDuration,
    pub algorithm: SigningAlgorithm,
    pub leeway: HumanDuration,
    pub transport: TokenTransport,
    /// In cookie mode, put the access token in an HttpOnly cookie (else in the body).
    pub access_cookie: bool,
    /// Development only: cookies without `Secure` and without the `__Host-`/`__Secure-`
    /// prefixes, so they work over plain http. Refused unless `server.bind` is loopback.
    pub insecure_dev_cookies: bool,
    /// Also put the expanded permissions of the user's roles in access tokens.
    pub include_permissions: bool,
    /// Memory for access tokens whose signature verified, in MiB.
    pub verified_cache_mb: usize,
    /// A verified token unused this long leaves the cache, so an idle server gives the memory
    /// back.
    pub verified_cache_idle: HumanDuration,
}

/// Where tokens travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenTransport {
    /// JSON bodies and the Authorization header.
    Body,
    /// HttpOnly cookies; state-changing requests carry a CSRF token.
    Cookie,
    /// Both: cookies are set and tokens are also returned in the body.
    Both,
}

impl TokenTransport {
    pub fn uses_cookies(self) -> bool {
        self != TokenTransport::Body
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordsConfig {
    pub min_length: usize,
    pub max_length: usize,
    pub hash_workers: usize,
    pub hash_queue: usize,
    /// A hashing thread gives its argon2 memory back after this long without work.
    pub release_memory_after: HumanDuration,
    /// Self-service sign-up may leave the password out: the account then starts with a passkey.
    pub optional: bool,
    pub argon2: Argon2Config,
}

/// Passkeys (WebAuthn). The relying party is the host of `server.public_url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasskeysConfig {
    /// How long a registration or sign-in ceremony may take, start to finish.
    pub ceremony_ttl: HumanDuration,
    /// How long the `enrolment_token` of a passwordless sign-up or a recovery works.
    pub enrolment_ttl: HumanDuration,
}

impl Default for PasskeysConfig {
    fn default() -> Self {
        Self { ceremony_ttl: HumanDuration::secs(300), enrolment_ttl: HumanDuration::secs(900) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 64 * 1024,
            shutdown_grace: HumanDuration::secs(10),
            shutdown_delay: HumanDuration::secs(0),
            request_timeout: HumanDuration::secs(30),
            header_timeout: HumanDuration::secs(10),
            idle_timeout: HumanDuration::secs(60),
            max_connections: 10_000,
            max_connections_per_ip: 100,
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::XForwardedFor,
            cors: CorsConfig::default(),
            tls: TlsConfig::default(),
            public_url: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Redb,
            path: PathBuf::from("./data/authd.redb"),
            cache_mb: 1,
            url: None,
            pool_size: 16,
            statement_timeout: HumanDuration::secs(5),
            connect_timeout: HumanDuration::secs(5),
            tls: false,
            tls_ca: None,
        }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: "authd".into(),
            access_ttl: HumanDuration::secs(15 * 60),
            refresh_ttl: HumanDuration::secs(7 * 24 * 3600),
            session_max: HumanDuration::secs(30 * 24 * 3600),
            algorithm: SigningAlgorithm::EdDSA,
            leeway: HumanDuration::secs(30),
            transport: TokenTransport::Body,
            access_cookie: true,
            insecure_dev_cookies: false,
            include_permissions: false,
            verified_cache_mb: 8,
            verified_cache_idle: HumanDuration::secs(30),
        }
    }
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 256,
            hash_workers: 0,
            hash_queue: 256,
            release_memory_after: HumanDuration(Duration::from_secs(20)),
            optional: false,
            argon2: Argon2Config::default(),
        }
    }
}

/// OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane).
impl Default for Argon2Config {
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

/// A duration written as `15m`, `7d`, `30s` (or a number of seconds).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"90s\", \"15m\", \"12h\" or \"7d\", or a whole number of seconds")
            }
            fn visit_u64<E: serde::de::Error>(self, s: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration::secs(s))
            }
            fn visit_i64<E: serde::de::Error>(self, s: i64) -> Result<HumanDuration, E> {
                u64::try_from(s).map(HumanDuration::secs).map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(t.trim()).map(HumanDuration).map_err(|_| {
                    E::custom(format!("`{t}` is not a duration: write e.g. \"90s\", \"15m\", \"12h\" or \"7d\""))
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A config problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// What the checks found: every problem, not only the first.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, why: impl Into<String>) {
        self.0.push((key.into(), why.into()));
    }
}

impl Config {
    /// Loads the effective config. An explicit `path` must exist; without one, `./config.toml`
    /// is read when present (never searched for in parent directories).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => {
                if !p.is_file() {
                    return Err(ConfigError(format!("config file {} does not exist", p.display())));
                }
                diagnose::syntax(p).map_err(ConfigError)?;
                fig = fig.merge(Toml::file_exact(p));
            }
            None if Path::new("config.toml").is_file() => {
                diagnose::syntax(Path::new("config.toml")).map_err(ConfigError)?;
                fig = fig.merge(Toml::file_exact("config.toml"));
            }
            None => {}
        }
        let fig = fig.merge(Env::prefixed("AUTHD_").split("__").ignore(&["config", "log"]));
        diagnose::extract(&fig).map_err(ConfigError)
    }

    fn check_console(&self, out: &mut Problems) {
        if let Some(b) = self.admin.console_bind {
            if !self.admin.console {
                out.add("admin.console_bind", "the console is off (admin.console = false)");
            }
            if b == self.server.bind || b.port() != 0 && b.port() == self.server.bind.port() {
                out.add("admin.console_bind", "must be another address than server.bind");
            }
        }
    }

    fn check_forward_auth(&self, out: &mut Problems) {
        let f = &self.forward_auth;
        if let Some(d) = &f.cookie_domain {
            let d = d.trim_start_matches('.');
            if d.is_empty() || d.contains(['/', ':', ' ']) || !d.contains('.') && d != "localhost" {
                out.add("forward_auth.cookie_domain", format!("`{d}` is not a domain, e.g. example.com"));
            } else if let Some(h) = self
                .server
                .public_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok()?.host_str().map(str::to_ascii_lowercase))
                && h != d.to_ascii_lowercase()
                && !h.ends_with(&format!(".{}", d.to_ascii_lowercase()))
            {
                out.add(
                    "forward_auth.cookie_domain",
                    format!(
                        "`{d}` must be server.public_url's host `{h}` or a parent of it, or signing in sets a cookie the browser refuses"
                    ),
                );
            }
            let http = self.server.public_url.as_deref().is_none_or(|u| u.starts_with("http://"));
            if http && !f.insecure_cookies {
                out.add(
                    "forward_auth.cookie_domain",
                    "over plain http the cookie is not Secure: set forward_auth.insecure_cookies = true to allow it (tests only)",
                );
            }
        }
        for (i, r) in f.rules.iter().enumerate() {
            let key = format!("forward_auth.rules[{i}]");
            let host = r.host.strip_prefix("*.").unwrap_or(&r.host);
            if host.is_empty() || host.contains(['*', '/', ':', ' ']) {
                out.add(key.clone(), format!("host `{}` must be a host name or *.domain", r.host));
            }
            if r.scheme.as_deref().is_some_and(|s| s != "http" && s != "https") {
                out.add(key.clone(), "scheme is \"http\" or \"https\"");
            }
            if r.methods.iter().any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase())) {
                out.add(key.clone(), "methods are upper case, as sent: \"GET\", \"POST\"");
            }
            if r.paths.iter().any(|p| !p.starts_with('/')) {
                out.add(key.clone(), "each path starts with /");
            }
            if matches!(r.policy, Policy::Bypass | Policy::Deny) && !(r.roles.is_empty() && r.permissions.is_empty()) {
                out.add(key.clone(), "roles and permissions mean nothing with bypass or deny");
            }
        }
    }

    /// Checks what types alone cannot: `Err` holds every problem, a line each.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = problems.iter().map(|(key, why)| format!("config key `{key}`: {why}")).collect();
        Err(ConfigError(lines.join("\n")))
    }

    /// Every problem the checks find, each as the key at fault and why.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Problems::default();
        self.check_all(&mut out);
        out.0
    }

    fn check_all(&self, out: &mut Problems) {
        let t = &self.tokens;
        if self.storage.backend == StorageBackend::Postgres
            && t.issuer.trim().is_empty()
            && self.server.public_url.is_none()
        {
            out.add(
                "server.public_url",
                "must be set with a shared database: every node names the same issuer in its tokens (or set tokens.issuer)",
            );
        }
        if t.audience.trim().is_empty() {
            out.add("tokens.audience", "must not be empty");
        }
        if t.access_ttl.0 < Duration::from_secs(10) || t.access_ttl.0 > Duration::from_secs(24 * 3600) {
            out.add("tokens.access_ttl", "must be between 10s and 24h");
        }
        if t.refresh_ttl <= t.access_ttl {
            out.add("tokens.refresh_ttl", "must be longer than tokens.access_ttl");
        }
        if t.session_max < t.refresh_ttl {
            out.add("tokens.session_max", "must be at least tokens.refresh_ttl");
        }
        self.check_forward_auth(out);
        self.check_console(out);
        if t.insecure_dev_cookies && !self.server.bind.ip().is_loopback() {
            out.add(
                "tokens.insecure_dev_cookies",
                "is for development on a loopback address only; server.bind is not loopback",
            );
        }
        if t.leeway.0 > Duration::from_secs(300) {
            out.add("tokens.leeway", "must be at most 5m");
        }
        let p = &self.passwords;
        if p.min_length < 8 {
            out.add("passwords.min_length", "must be at least 8 (NIST 800-63B)");
        }
        if p.max_length < 64 || p.max_length > 4096 {
            out.add("passwords.max_length", "must be between 64 and 4096");
        }
        if p.min_length > p.max_length {
            out.add("passwords.min_length", "must not exceed passwords.max_length");
        }
        if let Err(e) = argon2::Params::new(p.argon2.memory_kib, p.argon2.iterations, p.argon2.parallelism, None) {
            out.add("passwords.argon2", format!("invalid argon2 parameters: {e}"));
        }
        let tls = &self.server.tls;
        if tls.cert.is_some() != tls.key.is_some() {
            out.add("server.tls", "set both cert and key (PEM files), or neither");
        }
        for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
            if let Some(p) = path.as_ref().filter(|p| !p.is_file()) {
                out.add(key, format!("{} is not a readable file", p.display()));
            }
        }
        for o in &self.server.cors.origins {
            if o == "*" && self.server.cors.allow_credentials {
                out.add(
                    "server.cors.origins",
                    "`*` cannot be combined with allow_credentials = true; list exact origins",
                );
            }
            let exact = o == "*"
                || ((o.starts_with("https://") || o.starts_with("http://"))
                    && !o.ends_with('/')
                    && o.matches('/').count() == 2);
            if !exact {
                out.add("server.cors.origins", format!("`{o}` must be an exact origin like https://app.example.com"));
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if w.key().is_none() {
                out.add(format!("webhooks[{i}].secret"), "must be `whsec_` followed by base64 of at least 16 bytes");
            }
            if w.events.is_empty() {
                out.add(format!("webhooks[{i}].events"), "list at least one event type (or \"*\")");
            }
        }
        let b = &self.brute_force;
        if b.challenge_after == 0 || b.challenge_after > 100 {
            out.add("brute_force.challenge_after", "must be between 1 and 100 (NIST 800-63B: at most 100 failures)");
        }
        if b.max_delay < b.base_delay {
            out.add("brute_force.max_delay", "must be at least brute_force.base_delay");
        }
        if self.challenge.difficulty > 32 {
            out.add("challenge.difficulty", "must be at most 32 bits");
        }
        self.check_ranges(out);
        let c = &self.challenge;
        if c.kind != ChallengeKind::Pow && c.secret.as_ref().is_none_or(|s| s.0.trim().is_empty()) {
            out.add("challenge.secret", "is required when challenge.kind is a CAPTCHA provider");
        }
        if let Some(u) = &c.siteverify_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            out.add("challenge.siteverify_url", "must be an http(s) URL");
        }
        if self.storage.path.as_os_str().is_empty() {
            out.add("storage.path", "must not be empty");
        }
        if self.cache.backend == CacheBackend::Redis {
            match self.cache.url.as_ref().map(|u| u.0.as_str()) {
                None | Some("") => out.add("cache.url", "is required when cache.backend is redis"),
                Some(u) if !(u.starts_with("redis://") || u.starts_with("rediss://")) => {
                    out.add("cache.url", "must be a redis:// or rediss:// URL");
                }
                Some(_) => {}
            }
        }
        if let Some(ca) = &self.storage.tls_ca
            && !ca.is_file()
        {
            out.add("storage.tls_ca", "names no readable file");
        }
        let t = self.cache.timeout.0;
        if t < Duration::from_millis(1) || t > Duration::from_secs(10) {
            out.add("cache.timeout", "must be between 1ms and 10s");
        }
        if self.storage.backend == StorageBackend::Postgres {
            match self.storage.url.as_ref().map(|u| u.0.as_str()) {
                None | Some("") => out.add("storage.url", "is required when storage.backend is postgres"),
                Some(u) if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) => {
                    out.add("storage.url", "must be a postgres:// URL");
                }
                Some(_) => {}
            }
        }
        // An empty path is told above; the socket beside it would seem to collide with it.
        if !self.storage.path.as_os_str().is_empty() {
            self.check_path_collisions(out);
        }
        self.check_messages(out);
        if let Some(e) = &self.telemetry.otlp_endpoint
            && !url::Url::parse(e).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            out.add("telemetry.otlp_endpoint", "must be an http(s) URL such as http://127.0.0.1:4318");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            out.add("log.level", "is not a valid log filter (e.g. info, debug, authd=debug)");
        }
    }

    /// The database, for messages: the redb file, or the PostgreSQL host and database (never the
    /// password).
    pub fn storage_description(&self) -> String {
        match self.storage.backend {
            StorageBackend::Redb => self.storage.path.display().to_string(),
            StorageBackend::Postgres => {
                let url = self.storage.url.as_ref().map(|u| u.0.as_str()).unwrap_or_default();
                match url::Url::parse(url) {
                    Ok(u) => format!("postgres://{}{}", u.host_str().unwrap_or_default(), u.path()),
                    Err(_) => "postgres".to_owned(),
                }
            }
        }
    }

    /// A warning when the server listens beyond this host but would name itself by its bind
    /// address in links and as the issuer.
    pub fn public_bind_without_url(&self) -> Option<String> {
        let explicit_issuer = !self.tokens.issuer.trim().is_empty();
        (!self.server.bind.ip().is_loopback() && self.server.public_url.is_none()).then(|| {
            format!(
                "server.bind {} is reachable from other hosts but server.public_url is unset: links{} will name {}; set server.public_url to the URL users reach",
                self.server.bind,
                if explicit_issuer { "" } else { " and the token issuer" },
                self.public_url()
            )
        })
    }

    /// The base of links in messages: `server.public_url`, or the bound address.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.server.tls.is_enabled() { "https" } else { "http" };
                format!("{scheme}://{}", self.server.bind)
            }
        }
    }

    /// The data key from `security.data_key`, when set and well-formed.
    pub fn data_key(&self) -> Option<[u8; 32]> {
        use base64::Engine as _;
        let text = self.security.data_key.as_ref()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.0.trim()).ok()?;
        bytes.try_into().ok()
    }

    fn check_messages(&self, out: &mut Problems) {
        let is_base_url = |u: &str| {
            url::Url::parse(u)
                .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some() && p.query().is_none())
        };
        if let Some(u) = &self.server.public_url
            && !is_base_url(u)
        {
            out.add("server.public_url", "must be an http(s) URL without a query, e.g. https://auth.example.com");
        }
        if let Some(u) = &self.links.base_url
            && !is_base_url(u)
        {
            out.add("links.base_url", "must be an http(s) URL without a query");
        }
        if self.email.from.parse::<lettre::message::Mailbox>().is_err() {
            out.add("email.from", "must be an address, optionally with a name: `Name <user@example.com>`");
        }
        let smtp = &self.email.smtp;
        if self.email.transport == EmailTransport::Smtp && smtp.host.trim().is_empty() {
            out.add("email.smtp.host", "is required when email.transport is smtp");
        }
        if smtp.password.is_some() && smtp.username.is_none() {
            out.add("email.smtp.username", "is required when email.smtp.password is set");
        }
        if let Some(ca) = smtp.tls_ca.as_ref().filter(|p| !p.is_file()) {
            out.add("email.smtp.tls_ca", format!("{} is not a readable file", ca.display()));
        }
        if self.sms.transport == SmsTransport::Gateway {
            match self.sms.gateway_url.as_deref() {
                Some(u) if is_base_url(u) || url::Url::parse(u).is_ok_and(|p| p.scheme().starts_with("http")) => {}
                _ => out.add("sms.gateway_url", "an http(s) URL is required when sms.transport is gateway"),
            }
            if self.sms.secret.as_ref().and_then(|s| webhook_key(&s.0)).is_none() {
                out.add("sms.secret", "must be `whsec_` followed by base64 of at least 16 bytes");
            }
        }
        if !LOCALES.contains(&self.messages.default_locale.as_str()) {
            out.add("messages.default_locale", format!("must be one of {LOCALES:?}"));
        }
        if let Some(d) = self.messages.templates_dir.as_ref().filter(|d| !d.is_dir()) {
            out.add("messages.templates_dir", format!("{} is not a directory", d.display()));
        }
        if self.security.data_key.is_some() && self.data_key().is_none() {
            out.add("security.data_key", "must be base64 of exactly 32 bytes (openssl rand -base64 32)");
        }
        if self.storage.backend == StorageBackend::Postgres && self.security.data_key.is_none() {
            out.add(
                "security.data_key",
                "is required with storage.backend = postgres: every node needs the same key (openssl rand -base64 32)",
            );
        }
        for (name, p) in &self.oauth.providers {
            let valid_name = !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !valid_name {
                out.add(format!("oauth.providers.{name}"), "names are 1-32 characters of a-z, 0-9, '_' and '-'");
            }
            if let Some((key, why)) = p.problem() {
                out.add(format!("oauth.providers.{name}.{key}"), why);
            }
        }
        for r in &self.oauth.allowed_redirects {
            let ok = url::Url::parse(r).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.fragment().is_none()
            });
            if !ok {
                out.add(
                    "oauth.allowed_redirects",
                    format!("`{r}` must be an absolute http(s) URL without user info or fragment"),
                );
            }
        }
        if self.metrics.token.as_ref().is_some_and(|t| t.0.trim().len() < 16) {
            out.add("metrics.token", "must be at least 16 characters (openssl rand -hex 24)");
        }
        if !(1..=100).contains(&self.verification.attempts) {
            out.add("verification.attempts", "must be between 1 and 100");
        }
    }

    /// The admin socket: `admin.socket`, or beside the database file.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.admin.socket.clone().unwrap_or_else(|| self.storage.path.with_extension("sock"))
    }

    /// Every duration and size has a range (documented in config.toml): values far outside it
    /// are mistakes, and some would overflow the clock arithmetic at run time.
    fn check_ranges(&self, out: &mut Problems) {
        const S: u64 = 1;
        const M: u64 = 60;
        const H: u64 = 3600;
        const D: u64 = 86_400;
        let durations: [(&str, HumanDuration, u64, u64); 32] = [
            ("passwords.release_memory_after", self.passwords.release_memory_after, S, D),
            ("tokens.verified_cache_idle", self.tokens.verified_cache_idle, S, D),
            ("oauth.timeout", self.oauth.timeout, S, 5 * M),
            ("messages.retry_for", self.messages.retry_for, S, D),
            ("email.smtp.timeout", self.email.smtp.timeout, S, 5 * M),
            ("sms.timeout", self.sms.timeout, S, 5 * M),
            ("verification.email_ttl", self.verification.email_ttl, S, 30 * D),
            ("verification.sms_ttl", self.verification.sms_ttl, S, D),
            ("verification.resend_interval", self.verification.resend_interval, 0, H),
            ("recovery.reset_ttl", self.recovery.reset_ttl, S, D),
            ("security.step_up_window", self.security.step_up_window, S, D),
            ("security.mfa_token_ttl", self.security.mfa_token_ttl, S, H),
            ("security.recovery_link_ttl", self.security.recovery_link_ttl, S, 7 * D),
            ("passkeys.ceremony_ttl", self.passkeys.ceremony_ttl, S, H),
            ("passkeys.enrolment_ttl", self.passkeys.enrolment_ttl, S, D),
            ("webhook_delivery.timeout", self.webhook_delivery.timeout, S, 5 * M),
            ("storage.statement_timeout", self.storage.statement_timeout, S, 10 * M),
            ("storage.connect_timeout", self.storage.connect_timeout, S, 10 * M),
            ("server.shutdown_grace", self.server.shutdown_grace, 0, 10 * M),
            ("server.shutdown_delay", self.server.shutdown_delay, 0, 10 * M),
            ("server.tls.reload_check", self.server.tls.reload_check, 0, D),
            ("server.request_timeout", self.server.request_timeout, S, 10 * M),
            ("server.header_timeout", self.server.header_timeout, S, 10 * M),
            ("server.idle_timeout", self.server.idle_timeout, S, D),
            ("tokens.refresh_ttl", self.tokens.refresh_ttl, M, 400 * D),
            ("tokens.session_max", self.tokens.session_max, M, 3650 * D),
            ("brute_force.max_delay", self.brute_force.max_delay, 0, D),
            ("brute_force.forget_after", self.brute_force.forget_after, S, 30 * D),
            ("challenge.ttl", self.challenge.ttl, S, H),
            ("audit.retention", self.audit.retention, S, 3650 * D),
            ("webhook_delivery.retry_for", self.webhook_delivery.retry_for, S, 30 * D),
            ("brute_force.base_delay", self.brute_force.base_delay, 0, H),
        ];
        for (key, d, min, max) in durations {
            if d.0 < Duration::from_secs(min) || d.0 > Duration::from_secs(max) {
                let (lo, hi) = (HumanDuration::secs(min), HumanDuration::secs(max));
                out.add(key, format!("must be between {lo:?} and {hi:?}"));
            }
        }
        let p = &self.passwords;
        let r = &self.rate_limit;
        let b = &self.brute_force;
        let sizes: [(&str, u64, u64, u64); 14] = [
            ("storage.pool_size", self.storage.pool_size as u64, 1, 1000),
            ("storage.cache_mb", self.storage.cache_mb as u64, 1, 1 << 20),
            ("tokens.verified_cache_mb", self.tokens.verified_cache_mb as u64, 1, 1 << 16),
            ("server.max_body_bytes", self.server.max_body_bytes as u64, 1024, 16 << 20),
            ("server.max_connections", self.server.max_connections as u64, 1, 1_000_000),
            ("server.max_connections_per_ip", self.server.max_connections_per_ip as u64, 1, 1_000_000),
            ("passwords.hash_workers", p.hash_workers as u64, 0, 256),
            ("passwords.hash_queue", p.hash_queue as u64, 1, 100_000),
            ("passwords.argon2.memory_kib", u64::from(p.argon2.memory_kib), 8, 4 << 20),
            ("passwords.argon2.iterations", u64::from(p.argon2.iterations), 1, 1000),
            ("rate_limit.max_entries", r.max_entries, 1, 100_000_000),
            ("rate_limit.ipv6_prefix", u64::from(r.ipv6_prefix), 32, 128),
            ("brute_force.free_failures", u64::from(b.free_failures), 1, 100),
            ("brute_force.max_entries", b.max_entries, 1, 100_000_000),
        ];
        for (key, v, min, max) in sizes {
            if !(min..=max).contains(&v) {
                out.add(key, format!("must be between {min} and {max}"));
            }
        }
        if self.server.max_connections_per_ip > self.server.max_connections {
            out.add("server.max_connections_per_ip", "must not exceed server.max_connections");
        }
        for (name, l) in [
            ("login", r.login),
            ("mfa", r.mfa),
            ("register", r.register),
            ("refresh", r.refresh),
            ("password", r.password),
            ("general", r.general),
        ] {
            for (scope, lim) in [("per_ip", l.per_ip), ("per_account", l.per_account)] {
                let key = format!("rate_limit.{name}.{scope}");
                if !lim.is_off() && (lim.per.0 < Duration::from_secs(1) || lim.per.0 > Duration::from_secs(D)) {
                    out.add(format!("{key}.per"), "must be between 1s and 1day");
                }
                if lim.rate > 1_000_000 || lim.burst > 1_000_000 {
                    out.add(key.clone(), "rate and burst are at most 1000000");
                }
            }
        }
    }

    /// The database and the socket may share no path with each other or another file: stale-socket cleanup would
    /// otherwise remove the database.
    fn check_path_collisions(&self, out: &mut Problems) {
        let tls = &self.server.tls;
        let mut paths: Vec<(&str, PathBuf)> =
            vec![("storage.path", self.storage.path.clone()), ("admin.socket", self.admin_socket_path())];
        paths.extend(tls.cert.iter().map(|p| ("server.tls.cert", p.clone())));
        paths.extend(tls.key.iter().map(|p| ("server.tls.key", p.clone())));
        let norm = |p: &Path| {
            let abs =
                if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(p) };
            abs.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect::<PathBuf>()
        };
        // The TLS certificate and key may share one PEM file; nothing else may share a path.
        for (i, (a, pa)) in paths.iter().enumerate().take(2) {
            for (b, pb) in &paths[i + 1..] {
                if norm(pa) == norm(pb) {
                    let hint = if *a == "storage.path" && *b == "admin.socket" {
                        "; the admin socket defaults to storage.path with `.sock`, so do not name the database *.sock"
                    } else {
                        ""
                    };
                    out.add(*a, format!("names the same file as `{b}`, {}{hint}", pa.display()));
                }
            }
        }
    }

    /// The effective config as TOML, for `authd config check`. No key holds a secret today;
    /// any that does must be masked here.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    pub fn hash_workers(&self) -> usize {
        match self.passwords.hash_workers {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_human_forms() {
        let d: HumanDuration = serde_json::from_str("\"7d\"").unwrap();
        assert_eq!(d.as_secs(), 7 * 86400);
        let d: HumanDuration = serde_json::from_str("\"15m\"").unwrap();
        assert_eq!(d.as_secs(), 900);
        let d: HumanDuration = serde_json::from_str("90").unwrap();
        assert_eq!(d.as_secs(), 90);
        assert!(serde_json::from_str::<HumanDuration>("\"soon\"").is_err());
    }

    #[test]
    fn config_toml_is_the_defaults_and_names_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let documented = std::fs::read_to_string(&path).unwrap();
        let loaded: Config =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::file_exact(&path)).extract().unwrap();
        assert_eq!(loaded.to_toml(), Config::default().to_toml(), "config.toml sets only defaults");
        let defaults: toml::Value = toml::from_str(&Config::default().to_toml()).unwrap();
        fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            if let toml::Value::Table(t) = v {
                for (k, v) in t {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    keys(&key, v, out);
                    out.push(key);
                }
            }
        }
        let mut all = Vec::new();
        keys("", &defaults, &mut all);
        for key in all {
            let last = key.rsplit('.').next().unwrap_or(&key);
            assert!(
                documented.contains(&format!("{last} =")) || documented.contains(&format!("[{key}]")),
                "config.toml does not document `{key}`"
            );
        }
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = Config::default();
        c.tokens.refresh_ttl = HumanDuration::secs(60);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("tokens.refresh_ttl"), "{e}");
        let mut c = Config::default();
        c.passwords.min_length = 4;
        assert!(c.validate().unwrap_err().to_string().contains("passwords.min_length"));
        // Every problem, not only the first.
        c.tokens.refresh_ttl = HumanDuration::secs(60);
        c.server.max_connections_per_ip = c.server.max_connections + 1;
        let e = c.validate().unwrap_err().to_string();
        let keys: Vec<&str> = e.lines().filter_map(|l| l.split('`').nth(1)).collect();
        assert_eq!(keys, ["tokens.refresh_ttl", "passwords.min_length", "server.max_connections_per_ip"], "{e}");
        // An empty database path is one problem, not also a clash with the socket beside it.
        let mut c = Config::default();
        c.storage.path = PathBuf::new();
        assert_eq!(c.problems(), [("storage.path".to_owned(), "must not be empty".to_owned())]);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Loading what an operator wrote never panics: it is a config or a clear error.
        fn loads_cleanly(text: &str) {
            let loaded: Result<Config, _> =
                Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)).extract();
            if let Ok(cfg) = loaded {
                let _ = cfg.validate();
            }
        }

        proptest! {
            #[test]
            fn arbitrary_text_loads_or_is_refused(text in "[ -~\n]{0,300}") {
                loads_cleanly(&text);
            }

            #[test]
            fn arbitrary_values_of_real_keys_load_or_are_refused(
                section in prop::sample::select(vec!["server", "tokens", "passwords", "rate_limit", "storage", "verification", "security", "oauth", "email", "sms"]),
                key in "[a-z_]{1,20}",
                value in prop_oneof![Just("\"\"".to_owned()), "-?[0-9]{1,25}", "\"[ -~]{0,30}\"", Just("[]".to_owned()), Just("{}".to_owned())],
            ) {
                loads_cleanly(&format!("[{section}]\n{key} = {value}\n"));
            }
        }

        #[test]
        fn the_seed_corpus_loads_or_is_refused() {
            for doc in include_str!("../../fuzz/seeds/config.toml.txt").split("---") {
                loads_cleanly(doc);
            }
        }
    }
}
