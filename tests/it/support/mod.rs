//! What the stories share: the server in process and its client, and the real things around it.
//!
//! - [`app`]: `TestApp`, authd in this process on 127.0.0.1:0 with a fresh data directory, and
//!   the client calls every story makes (register, login, a signed-in user, an admin).
//! - [`authenticator`]: a software passkey, answering WebAuthn options as a browser would.
//! - [`binary`]: the real `authd` binary: CLI commands, and `authd serve` as a process.
//! - [`chromium`]: a headless Chromium over WebDriver, for the hosted pages.
//! - [`oidc`]: a real OpenID Provider that authd signs in with, and an application's login.
//! - [`ports`]: `free_port`, and fakes (poem endpoints) served on a loopback port.
//! - [`postgres`]: a fresh database on the shared test PostgreSQL, or a cluster of one's own.
//! - [`proxy`]: nginx, Caddy or Traefik running a forward-auth sample from `contrib/`.
//! - [`redis`]: a Redis server of the test's own.
//! - [`sms`]: an SMS gateway that checks authd's signature and keeps the messages.
//! - [`smtp`]: a real SMTP server that keeps what authd sends, parsed.
//!
//! A helper that needs something from outside (a PostgreSQL server, `redis-server`, Chromium,
//! `node`) gives `None` and a note when it is missing, and fails instead under
//! `TEST_AUTHD_REQUIRE_SERVICES` (CI), so that nothing is skipped there unseen.

mod app;
mod authenticator;
pub mod binary;
mod chromium;
pub mod oidc;
mod ports;
mod postgres;
mod proxy;
mod redis;
mod sms;
mod smtp;

pub use app::{
    PASSWORD, TestApp, Tokens, assert_problem, call, claims_of, client_from, header_of, private_dir, test_config,
};
pub use authenticator::Authenticator;
pub use chromium::Browser;
pub use oidc::RealOp;
pub use ports::{free_port, serve_fake};
pub use postgres::{PrivatePostgres, TEST_DATA_KEY, postgres_config, postgres_db, use_postgres};
pub use proxy::{Proxy, ProxyKind, find as find_program};
pub use redis::Redis;
pub use sms::SmsGateway;
pub use smtp::{MailSink, SinkTls};

/// `None`, with a note that `what` is missing and how to get it; a failure under
/// `TEST_AUTHD_REQUIRE_SERVICES`.
pub fn unavailable<T>(what: &str, fix: &str) -> Option<T> {
    assert!(std::env::var_os("TEST_AUTHD_REQUIRE_SERVICES").is_none(), "{what} is not available: {fix}");
    eprintln!("{what} tests skipped: {fix}");
    None
}
