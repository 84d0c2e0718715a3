//! Unix-socket transport: mode 0600 beside the database file.

use std::{io, path::Path, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{AdminReply, AdminRequest, execute};
use crate::service::AuthService;

/// Requests bigger than this are refused.
const MAX_REQUEST: u64 = 64 * 1024;

/// Answers admin requests until the task is dropped.
pub async fn serve(listener: UnixListener, svc: Arc<AuthService>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let svc = Arc::clone(&svc);
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &svc).await {
                tracing::warn!(error = %e, "admin socket request failed");
            }
        });
    }
}

async fn handle(stream: UnixStream, svc: &AuthService) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST)).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(req) => execute(svc, req).await,
        Err(e) => AdminReply::Error { code: "invalid_request".into(), message: format!("bad admin request: {e}") },
    };
    let mut out = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nobody listens: the server is not running.
    #[error("no server is listening on the admin socket")]
    NotRunning,
    #[error("admin socket: {0}")]
    Io(#[from] io::Error),
}

/// Sends one request to a running server.
pub async fn call(path: &Path, req: &AdminRequest) -> Result<AdminReply, CallError> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
            return Err(CallError::NotRunning);
        }
        Err(e) => return Err(e.into()),
    };
    let (read, mut write) = stream.into_split();
    let mut out = serde_json::to_vec(req).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    let mut line = String::new();
    // Hashing a password can queue behind logins; a minute is plenty.
    tokio::time::timeout(Duration::from_secs(60), BufReader::new(read).read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the server did not answer"))??;
    serde_json::from_str(&line).map_err(|e| CallError::Io(io::Error::other(format!("bad reply from server: {e}"))))
}
