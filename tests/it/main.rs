//! One integration-test binary (links once): the real server on 127.0.0.1:0 with a fresh data
//! directory per test, spoken to over HTTP, and the real `authd` binary for the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod account;
mod admin;
mod attempts;
mod audit;
mod backup;
mod bad_input;
mod cli;
mod clients;
mod console;
mod console_browser;
mod container;
mod cookies;
mod crash;
mod details;
mod docs;
mod forward_auth;
mod installs;
mod integrity_accounts;
mod integrity_limits;
mod integrity_oauth;
mod keys;
mod local_host;
mod memory;
mod mfa;
mod nodes;
mod oauth;
mod openapi;
mod operator;
mod outage;
mod passkeys;
mod passkeys_browser;
mod privileges;
mod provider;
mod provider_browser;
mod proxies;
mod readme;
mod recovery;
mod restarts;
mod sessions;
mod shared_limits;
mod slowloris;
mod store;
mod story;
mod support;
mod telemetry;
mod tls;
mod tokens;
mod ui;
mod upgrades;
mod webhooks;
