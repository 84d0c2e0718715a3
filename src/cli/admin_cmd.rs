//! Sends an admin request to the running server, or runs it on the database directly.

use crate::{
    admin::{self, AdminReply, AdminRequest, CallError},
    config::{Config, StorageBackend},
    service::{AuthService, StartError},
    store::StoreError,
};

pub async fn send(cfg: &Config, req: AdminRequest) -> anyhow::Result<AdminReply> {
    // A shared database has no socket: every node and the CLI use the database itself.
    if cfg.storage.backend != StorageBackend::Redb {
        return direct(cfg, req).await;
    }
    let socket = cfg.admin_socket_path();
    match admin::call(&socket, &req).await {
        Ok(reply) => Ok(reply),
        Err(CallError::NotRunning) => direct(cfg, req).await,
        Err(e) => Err(e.into()),
    }
}

async fn direct(cfg: &Config, req: AdminRequest) -> anyhow::Result<AdminReply> {
    let db = cfg.storage_description();
    let svc = AuthService::open(cfg.clone()).await.map_err(|e| match e {
        StartError::Store(StoreError::Locked) => anyhow::anyhow!(
            "the database {db} is held by another process and no authd answers on {}; \
             is a server running with another config?",
            cfg.admin_socket_path().display()
        ),
        other => anyhow::anyhow!("cannot open {db}: {other}"),
    })?;
    Ok(admin::execute(&svc, req).await)
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
