//! Sends an admin request to the running server, or runs it on the database directly.

use crate::{
    admin_socket::{self, AdminReply, AdminRequest, CallError},
    config::{Config, StorageBackend},
    service::AuthService,
};

pub async fn send(cfg: &Config, req: AdminRequest) -> anyhow::Result<AdminReply> {
    // A shared database has no socket: every node and the CLI use the database itself.
    if cfg.storage.backend != StorageBackend::Redb {
        return direct(cfg, req).await;
    }
    let socket = cfg.admin_socket_path();
    match admin_socket::call(&socket, &req).await {
        Ok(reply) => Ok(reply),
        Err(CallError::NotRunning) => direct(cfg, req).await,
        Err(e) => Err(e.into()),
    }
}

async fn direct(cfg: &Config, req: AdminRequest) -> anyhow::Result<AdminReply> {
    let db = cfg.storage_description();
    let svc = AuthService::open(cfg.clone()).await.map_err(|e| {
        if e.is_database_in_use() {
            anyhow::anyhow!(
                "the database {db} is held by another process and no authd answers on {}; \
                 is a server running with another config?",
                cfg.admin_socket_path().display()
            )
        } else {
            anyhow::anyhow!("cannot open {db}: {e}")
        }
    })?;
    Ok(admin_socket::execute(&svc, req).await)
}

/// Reads one line (a password) from standard input, without its line ending.
pub fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(pw)
}
