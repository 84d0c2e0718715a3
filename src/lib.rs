//! authd: a single-binary authentication server.
//!
//! # Layout
//! Dependencies point one way: `api`/`cli`/`admin_socket` → `service` → `store`/`security`/`cache`/
//! `messages`/`upstream` → `model`.
//! - [`model`]: plain records (users, sessions, keys, roles, revocations).
//! - [`store`]: storage ports (a trait per aggregate) and their backends, `store/redb/` and
//!   `store/postgres/`, the only code that knows either engine; closures over one transaction.
//! - [`security`]: argon2id pool and password policy, compact JWS on ring, identifier parsing.
//! - [`messages`]: email (SMTP) and SMS (HTTP gateway) senders and their templates.
//! - [`metrics`]: what `/metrics` exposes, in Prometheus text.
//! - [`upstream`]: the providers authd signs users in with (OpenID Connect discovery and ID
//!   tokens, OAuth 2 user APIs).
//! - [`cache`]: in-process state (revocations checked on every request, expiring caches) and the
//!   fast state nodes may share (moka or Redis).
//! - [`service`]: the rules, shared by the HTTP API and the CLI.
//! - [`api`]: poem-openapi handlers; errors become RFC 9457 problem+json there only.
//! - [`admin_socket`]: the local socket through which the CLI reaches a running server.
//! - [`cli`]: clap subcommands, each a thin call into a service.
//! - [`server`]: builds and runs the whole process (HTTP, admin socket, housekeeping).
#![forbid(unsafe_code)]

pub mod admin_socket;
pub mod api;
pub mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod security;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod upstream;
