//! The `authd` command line. Each subcommand is a thin call into a service, through the admin
//! socket when a server runs and directly on the database otherwise.

mod admin_cmd;
mod audit;
mod backup;
mod challenge;
mod client;
mod config_cmd;
mod forward_auth;
mod json;
mod keys;
mod migrate;
mod role;
mod serve;
mod user;
mod webhooks;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "authd", version, about = "A single-binary authentication server")]
pub struct Cli {
    /// Path to config.toml (default: ./config.toml when present)
    #[arg(short, long, global = true, env = "AUTHD_CONFIG")]
    config: Option<PathBuf>,
    /// Log format (overrides log.format)
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (Swagger UI at /docs)
    Serve,
    /// Manage user accounts
    User {
        #[command(subcommand)]
        cmd: user::UserCmd,
    },
    /// Manage roles and their permissions
    Role {
        #[command(subcommand)]
        cmd: role::RoleCmd,
    },
    /// Read the audit log (newest last); `--follow` keeps printing new events
    Audit(audit::AuditArgs),
    /// Manage clients: applications that sign users in through authd, and backends
    Client {
        #[command(subcommand)]
        cmd: client::ClientCmd,
    },
    /// Webhook deliveries
    Webhooks {
        #[command(subcommand)]
        cmd: webhooks::WebhooksCmd,
    },
    /// Manage token signing keys
    Keys {
        #[command(subcommand)]
        cmd: keys::KeysCmd,
    },
    /// Forward-auth for reverse proxies: try the access rules
    #[command(name = "forward-auth")]
    ForwardAuth {
        #[command(subcommand)]
        cmd: forward_auth::ForwardAuthCmd,
    },
    /// Exit 0 when the server on this host answers /healthz (a container's health check)
    Healthcheck {
        /// Where to ask instead of server.bind's port on the loopback address
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the OpenAPI document (JSON)
    Openapi,
    /// Proof-of-work challenges (reference solver)
    Challenge {
        #[command(subcommand)]
        cmd: challenge::ChallengeCmd,
    },
    /// Back up the embedded database with its key, while the server runs or not
    Backup(backup::BackupArgs),
    /// Restore a backup into storage.path; checked whole before anything is replaced
    Restore(backup::RestoreArgs),
    /// Copy a redb database into PostgreSQL: authd migrate --from ./data/authd.redb --to postgres://…
    Migrate(migrate::MigrateArgs),
    /// Inspect the configuration
    Config {
        #[command(subcommand)]
        cmd: config_cmd::ConfigCmd,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Openapi => {
            println!("{}", crate::server::openapi_document());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Challenge { cmd } => return challenge::run(cmd),
        _ => {}
    }
    let mut cfg = Config::load(cli.config.as_deref())?;
    crate::service::check_config(&cfg).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(f) = cli.log_format {
        cfg.log.format = match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    match cli.command {
        Command::Healthcheck { url } => healthcheck(&cfg, url).await,
        Command::Serve => {
            let telemetry = match &cfg.telemetry.otlp_endpoint {
                Some(endpoint) => Some(crate::telemetry::Telemetry::start(endpoint)?),
                None => None,
            };
            let _ = logging(&cfg, &cfg.log.level, telemetry.as_ref());
            let served = serve::run(cfg).await;
            if let Some(t) = telemetry {
                t.shutdown();
            }
            served
        }
        Command::User { cmd } => {
            init_logging(&cfg, "warn");
            user::run(&cfg, cmd).await
        }
        Command::Role { cmd } => {
            init_logging(&cfg, "warn");
            role::run(&cfg, cmd).await
        }
        Command::Audit(args) => {
            init_logging(&cfg, "warn");
            audit::run(&cfg, args).await
        }
        Command::Webhooks { cmd } => {
            init_logging(&cfg, "warn");
            webhooks::run(&cfg, cmd).await
        }
        Command::Client { cmd } => {
            init_logging(&cfg, "warn");
            client::run(&cfg, cmd).await
        }
        Command::Keys { cmd } => {
            init_logging(&cfg, "warn");
            keys::run(&cfg, cmd).await
        }
        Command::ForwardAuth { cmd } => {
            init_logging(&cfg, "warn");
            forward_auth::run(&cfg, cmd).await
        }
        Command::Config { cmd } => config_cmd::run(&cfg, cmd),
        Command::Backup(args) => {
            init_logging(&cfg, "warn");
            backup::backup(&cfg, args).await
        }
        Command::Restore(args) => {
            init_logging(&cfg, "warn");
            backup::restore(&cfg, args).await
        }
        Command::Migrate(args) => {
            init_logging(&cfg, "warn");
            migrate::run(&cfg, args).await
        }
        Command::Openapi | Command::Challenge { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// Logs go to stderr; `AUTHD_LOG` (an env filter) overrides the level.
fn init_logging(cfg: &Config, level: &str) {
    let _ = logging(cfg, level, None);
}

/// The log on stderr, and the trace spans for the collector when `telemetry` is given.
fn logging(cfg: &Config, level: &str, telemetry: Option<&crate::telemetry::Telemetry>) -> anyhow::Result<()> {
    use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let filter = EnvFilter::try_from_env("AUTHD_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    // The collector's spans are not log lines.
    let filter = filter.add_directive(format!("{}=off", crate::telemetry::TARGET).parse()?);
    // Colour only on a terminal: log files and fail2ban need plain lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt = match cfg.log.format {
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    tracing_subscriber::registry().with(fmt).with(telemetry.map(|t| t.layer())).try_init()?;
    Ok(())
}

/// GET /healthz on this host; exit 0 on 200, 1 otherwise (with why on stderr).
async fn healthcheck(cfg: &Config, url: Option<String>) -> anyhow::Result<ExitCode> {
    let url = url.unwrap_or_else(|| {
        let scheme = if cfg.server.tls.is_enabled() { "https" } else { "http" };
        let port = cfg.server.bind.port();
        // A wildcard bind answers on loopback; the certificate then names another host.
        let ip = cfg.server.bind.ip();
        let host = match (ip.is_unspecified(), ip) {
            (true, std::net::IpAddr::V6(_)) => "[::1]".to_owned(),
            (true, std::net::IpAddr::V4(_)) => "127.0.0.1".to_owned(),
            (false, std::net::IpAddr::V6(a)) => format!("[{a}]"),
            (false, std::net::IpAddr::V4(a)) => a.to_string(),
        };
        format!("{scheme}://{host}:{port}/healthz")
    });
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .tls_danger_accept_invalid_certs(true)
        .build()?;
    match http.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory as _;

    /// Every argument and option of every command says what it is.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if a.get_help().is_none() && !matches!(a.get_id().as_str(), "help" | "version") {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "authd", &mut missing);
        assert!(missing.is_empty(), "arguments without help:\n{}", missing.join("\n"));
    }
}
