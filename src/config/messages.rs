//! Keys for what authd sends people (email, SMS), confirms (contacts), recovers (passwords)
//! and the second factor.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Secret};

/// The languages whose templates ship with authd.
pub const LOCALES: &[&str] = &["en", "ru"];

/// How mail leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    /// Print messages to the log (development).
    Log,
    Smtp,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, never optional).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on loopback.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    pub transport: EmailTransport,
    /// The `From:` header, e.g. `Example <no-reply@example.com>`.
    pub from: String,
    pub smtp: SmtpConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Connecting and each command must finish within this.
    pub timeout: HumanDuration,
    /// A CA (PEM) the server's certificate must chain to, beside the system's roots.
    pub tls_ca: Option<PathBuf>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self { transport: EmailTransport::Log, from: "authd <no-reply@localhost>".into(), smtp: SmtpConfig::default() }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            timeout: HumanDuration::secs(10),
            tls_ca: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsTransport {
    Log,
    /// POST `{to, text, kind}` to `sms.gateway_url`, signed like webhooks.
    Gateway,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub transport: SmsTransport,
    pub gateway_url: Option<String>,
    /// `whsec_…`: the gateway checks the `webhook-signature` header with it.
    pub secret: Option<Secret>,
    pub timeout: HumanDuration,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self { transport: SmsTransport::Log, gateway_url: None, secret: None, timeout: HumanDuration::secs(10) }
    }
}

/// Whether a contact must be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    Off,
    /// A confirmation is sent; login works without it.
    Optional,
    /// Login needs a confirmed contact.
    Required,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationConfig {
    pub email: VerifyMode,
    pub phone: VerifyMode,
    /// How long a mailed link and code work.
    pub email_ttl: HumanDuration,
    /// How long an SMS code works.
    pub sms_ttl: HumanDuration,
    /// Wrong codes before a secret burns.
    pub attempts: u32,
    /// At most one resend per address per this interval.
    pub resend_interval: HumanDuration,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        Self {
            email: VerifyMode::Off,
            phone: VerifyMode::Off,
            email_ttl: HumanDuration::secs(24 * 3600),
            sms_ttl: HumanDuration::secs(600),
            attempts: 5,
            resend_interval: HumanDuration::secs(60),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// How long a password-reset link and code work.
    pub reset_ttl: HumanDuration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self { reset_ttl: HumanDuration::secs(1800) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// Overrides: `<dir>/<locale>/<kind>.jinja` replaces a shipped template.
    pub templates_dir: Option<PathBuf>,
    /// The language when neither the user nor `Accept-Language` names one we ship.
    pub default_locale: String,
    /// The product name messages speak of.
    pub product_name: String,
    /// Keep retrying a message for this long, then give up (audited as `message.failed`).
    pub retry_for: HumanDuration,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self {
            templates_dir: None,
            default_locale: "en".into(),
            product_name: "authd".into(),
            retry_for: HumanDuration::secs(3600),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// The application's own pages: links go to `<base_url>/verify?token=…` and
    /// `<base_url>/reset?token=…`. Default: authd's pages under `server.public_url`.
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// base64 of 32 random bytes: encrypts TOTP secrets and queued messages, keys code hashes.
    /// Default with redb: a key file beside the database (`<storage.path>.key`), so the database
    /// file alone does not yield them. Required with postgres (every node needs the same).
    pub data_key: Option<Secret>,
    /// Changing the password, email or second factor needs a login newer than this.
    pub step_up_window: HumanDuration,
    /// Login with a second factor: how long the `mfa_token` works.
    pub mfa_token_ttl: HumanDuration,
    /// How long the link `authd user recovery-link` prints works.
    pub recovery_link_ttl: HumanDuration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            data_key: None,
            step_up_window: HumanDuration::secs(600),
            mfa_token_ttl: HumanDuration::secs(300),
            recovery_link_ttl: HumanDuration::secs(3600),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `GET /metrics` (Prometheus text) answers a scraper sending `Authorization: Bearer <token>`.
    /// Unset: no metrics endpoint. Best from the environment (AUTHD_METRICS__TOKEN).
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// An OTLP/HTTP collector (`http://host:4318`): `authd serve` sends it a trace span per
    /// request and per storage transaction. Unset: no traces.
    pub otlp_endpoint: Option<String>,
}
