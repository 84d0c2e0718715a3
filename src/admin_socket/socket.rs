//! Unix-socket transport. The socket is created 0600 (0666 only when `admin.allowed_uids` names
//! other users) with no looser moment in between, and every peer's uid is checked (SO_PEERCRED):
//! root, the server's own uid and `admin.allowed_uids` only.

use std::{io, path::Path, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{AdminReply, AdminRequest, execute};
use crate::service::AuthService;

/// Requests bigger than this are refused.
const MAX_REQUEST: u64 = 64 * 1024;

/// Creates the socket at `path`. A socket left there by a previous run is replaced; any other
/// kind of file is not touched.
pub fn bind(path: &Path, allowed_uids: &[u32]) -> io::Result<UnixListener> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket; refusing to replace it", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let own = rustix::process::geteuid().as_raw();
        let mode = if allowed_uids.iter().any(|u| *u != own && *u != 0) { 0o666 } else { 0o600 };
        // Bound in a private directory, given its mode there, then renamed over `path`: nobody
        // can reach it with a looser mode, and the umask (shared by every thread of the
        // process, and inherited by whatever another thread spawns) is never touched.
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // Short names: a socket path has at most 107 bytes, and this one should be no longer
        // than the configured one. The random part is a v7 uuid's last 8 hex digits.
        let id = uuid::Uuid::now_v7().simple().to_string();
        let staging = parent.join(format!(".a{}", &id[24..]));
        std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
        let staged = staging.join("s");
        let placed = UnixListener::bind(&staged).and_then(|listener| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
            std::fs::rename(&staged, path)?;
            Ok(listener)
        });
        let _ = std::fs::remove_dir_all(&staging);
        placed
    }
    #[cfg(not(unix))]
    {
        let _ = allowed_uids;
        UnixListener::bind(path)
    }
}

/// Root or the server's own uid: the operators who may also take every secret away in a backup.
fn peer_is_owner(stream: &UnixStream) -> bool {
    stream.peer_cred().is_ok_and(|c| c.uid() == 0 || c.uid() == rustix::process::geteuid().as_raw())
}

/// Root, the server's own uid, or one of `allowed`.
fn peer_allowed(stream: &UnixStream, allowed: &[u32]) -> Result<(), String> {
    let cred = stream.peer_cred().map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    let uid = cred.uid();
    #[cfg(unix)]
    let own = rustix::process::geteuid().as_raw();
    #[cfg(not(unix))]
    let own = uid;
    if uid == 0 || uid == own || allowed.contains(&uid) {
        Ok(())
    } else {
        Err(format!("uid {uid} may not use the admin socket (admin.allowed_uids)"))
    }
}

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
        if let Err(why) = peer_allowed(&stream, &svc.config().admin.allowed_uids) {
            tracing::warn!(target: "authd::security", "admin socket connection refused: {why}");
            tokio::spawn(refuse(stream, why));
            continue;
        }
        let svc = Arc::clone(&svc);
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &svc).await {
                tracing::warn!(error = %e, "admin socket request failed");
            }
        });
    }
}

async fn handle(stream: UnixStream, svc: &AuthService) -> io::Result<()> {
    let owner = peer_is_owner(&stream);
    let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST)).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<AdminRequest>(&line) {
        // A backup holds the signing keys and the data key: root and the server's uid only.
        Ok(AdminRequest::Backup) if !owner => AdminReply::Error {
            code: "permission_denied".into(),
            message: format!("uid {uid} may not take a backup: only root and the server's own user may"),
        },
        Ok(AdminRequest::Backup) => return send_backup(write, svc, uid).await,
        Ok(req) => execute(svc, req).await,
        Err(e) => AdminReply::Error { code: "invalid_request".into(), message: format!("bad admin request: {e}") },
    };
    let mut out = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Streams a consistent copy of the database: a reply line, then the copy's bytes.
async fn send_backup(mut write: tokio::net::unix::OwnedWriteHalf, svc: &AuthService, uid: u32) -> io::Result<()> {
    let ctx = crate::service::audit::AuditContext { actor: Some(format!("cli:uid={uid}")), ..Default::default() };
    let taken = crate::service::audit::with_audit_context(ctx, svc.backups.take(&crate::service::Principal::Operator));
    let taken = match taken.await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "backup failed");
            let reply = AdminReply::Error { code: "backup_failed".into(), message: format!("backup failed: {e}") };
            let mut out = serde_json::to_vec(&reply).map_err(io::Error::other)?;
            out.push(b'\n');
            write.write_all(&out).await?;
            return write.shutdown().await;
        }
    };
    let sent = async {
        let mut file = tokio::fs::File::open(&taken.file).await?;
        let bytes = file.metadata().await?.len();
        let reply = AdminReply::Backup {
            manifest: taken.manifest.clone(),
            key: taken.key.clone(),
            bytes,
            sha256: taken.sha256.clone(),
        };
        let mut out = serde_json::to_vec(&reply).map_err(io::Error::other)?;
        out.push(b'\n');
        write.write_all(&out).await?;
        tokio::io::copy(&mut file, &mut write).await?;
        write.shutdown().await
    }
    .await;
    let _ = tokio::fs::remove_file(&taken.file).await;
    tracing::info!(ok = sent.is_ok(), "backup taken through the admin socket");
    sent
}

/// Tells a refused peer why, then hangs up; its request is never read.
async fn refuse(stream: UnixStream, why: String) {
    let reply = AdminReply::Error { code: "permission_denied".into(), message: why };
    if let Ok(mut out) = serde_json::to_vec(&reply) {
        out.push(b'\n');
        let (_, mut write) = stream.into_split();
        let _ = write.write_all(&out).await;
        let _ = write.shutdown().await;
    }
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
    // A server that refuses this peer answers without reading; its reply still says why.
    if let Err(e) = write.write_all(&out).await
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    let mut line = String::new();
    // Hashing a password can queue behind logins; a minute is plenty.
    tokio::time::timeout(Duration::from_secs(60), BufReader::new(read).read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the server did not answer"))??;
    serde_json::from_str(&line).map_err(|e| CallError::Io(io::Error::other(format!("bad reply from server: {e}"))))
}

/// Asks a running server for a backup: its reply, and the reader its bytes then come from.
pub async fn call_backup(path: &Path) -> Result<(AdminReply, BufReader<tokio::net::unix::OwnedReadHalf>), CallError> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
            return Err(CallError::NotRunning);
        }
        Err(e) => return Err(e.into()),
    };
    let (read, mut write) = stream.into_split();
    let mut out = serde_json::to_vec(&AdminRequest::Backup).map_err(io::Error::other)?;
    out.push(b'\n');
    if let Err(e) = write.write_all(&out).await
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let reply = serde_json::from_str(&line)
        .map_err(|e| CallError::Io(io::Error::other(format!("bad reply from server: {e}"))))?;
    Ok((reply, reader))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::{
        os::unix::fs::PermissionsExt as _,
        sync::atomic::{AtomicBool, Ordering},
    };

    use super::*;

    /// The umask as /proc reports it: reading it through umask(2) would change it.
    fn umask() -> Option<String> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        Some(status.lines().find_map(|l| l.strip_prefix("Umask:"))?.trim().to_owned())
    }

    /// A child another thread spawns meanwhile inherits the umask of that moment; Chromium, for
    /// one, refuses to start when its private directories come out narrower than 0700.
    #[tokio::test]
    async fn binding_leaves_the_process_umask_alone_and_the_socket_private() {
        let dir = tempfile::tempdir().unwrap();
        let before = umask().unwrap();
        let done = AtomicBool::new(false);
        let seen = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                let mut seen = std::collections::BTreeSet::new();
                while !done.load(Ordering::Relaxed) {
                    seen.insert(umask().unwrap());
                }
                seen
            });
            for i in 0..200 {
                let path = dir.path().join(format!("admin-{}.sock", i % 3));
                let listener = bind(&path, &[]).unwrap();
                assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
                drop(listener);
            }
            done.store(true, Ordering::Relaxed);
            watcher.join().unwrap()
        });
        assert_eq!(seen, [before].into(), "the umask changed while sockets were bound");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 3, "only the sockets remain, no staging directory: {left:?}");
    }
}
