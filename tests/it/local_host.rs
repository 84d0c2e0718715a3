//! Attacks from a local account on the same host: reading the database while it is created,
//! loose permissions, path collisions, and the admin socket.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::support::binary::{Server, authd, authd_as, fails, ok, run};

fn mode(p: &Path) -> Option<u32> {
    std::fs::metadata(p).ok().map(|m| m.permissions().mode() & 0o777)
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_is_never_readable_by_others_while_it_is_created() {
    let dir = crate::support::private_dir();
    let data = dir.path().join("data");
    let db = data.join("authd.redb");
    // Watch every mode the directory and file ever have, from before they exist.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, data, db) = (Arc::clone(&stop), data.clone(), db.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for p in [&data, &db] {
                    if let Some(m) = mode(p).filter(|m| m & 0o077 != 0) {
                        seen.push((p.clone(), m));
                    }
                }
            }
            seen
        })
    };
    let db_env = db.to_str().unwrap().to_owned();
    let socket = data.join("authd.sock");
    // Serving means the database and the admin socket are made.
    let server = Server::start(dir.path(), &[("AUTHD_STORAGE__PATH", &db_env)]).await;
    stop.store(true, Ordering::Relaxed);
    let loose: Vec<(PathBuf, u32)> = watcher.join().unwrap();
    assert!(loose.is_empty(), "group/others could open: {loose:?}");
    assert_eq!(mode(&data), Some(0o700));
    assert_eq!(mode(&db), Some(0o600));
    assert_eq!(mode(&socket).map(|m| m & 0o777), Some(0o600));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_or_database_others_can_read_is_refused() {
    let dir = crate::support::private_dir();
    let d = dir.path();
    ok(d, &["user", "add", "ann@example.com"], None).await;
    let db = d.join("authd.redb");
    let before = std::fs::read(&db).unwrap();

    chmod(d, 0o755);
    fails(d, &["config", "check"], "chmod 700").await;
    fails(d, &["serve"], "chmod 700").await;
    fails(d, &["user", "list"], "chmod 700").await;
    chmod(d, 0o700);

    chmod(&db, 0o640);
    fails(d, &["config", "check"], "chmod 600").await;
    let o = run(d, &["serve"], None).await;
    assert!(!o.ok && o.stderr.contains("has mode 0640"), "{}", o.stderr);
    // Refused, not repaired behind the operator's back, and nothing written.
    assert_eq!(mode(&db), Some(0o640));
    assert_eq!(std::fs::read(&db).unwrap(), before);
    chmod(&db, 0o600);
    assert!(ok(d, &["user", "list"], None).await.contains("ann@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_path_that_collides_with_the_socket_is_a_config_error() {
    let dir = crate::support::private_dir();
    let d = dir.path();
    // Named like the socket: stale-socket cleanup must never get to unlink it.
    let db = d.join("authd.sock");
    std::fs::write(&db, b"precious").unwrap();
    chmod(&db, 0o600);
    for args in [&["config", "check"][..], &["serve"][..]] {
        let o = authd(d).args(args).env("AUTHD_STORAGE__PATH", &db).output().await.unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("storage.path") && err.contains("admin.socket"), "{err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), b"precious");

    // A configured socket path that is some other file is not replaced either.
    let notes = d.join("notes.txt");
    std::fs::write(&notes, b"keep me").unwrap();
    let o = authd(d)
        .args(["serve"])
        .env("AUTHD_SERVER__BIND", "127.0.0.1:0")
        .env("AUTHD_ADMIN__SOCKET", &notes)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&notes).unwrap(), b"keep me");
}

/// Runs the CLI as another uid (needs root to switch).
async fn as_uid(dir: &Path, uid: u32, envs: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let o = authd_as(uid, dir).args(args).envs(envs.iter().copied()).output().await.unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_socket_answers_only_allowed_uids() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching uids needs root");
        return;
    }
    let dir = crate::support::private_dir();
    ok(dir.path(), &["user", "add", "ann@example.com"], None).await;
    // The socket in a directory every user can reach, so that only its mode and the
    // credential check stand in the way.
    let public = crate::support::private_dir();
    chmod(public.path(), 0o755);
    let socket = public.path().join("admin.sock");
    let sock = socket.to_str().unwrap().to_owned();
    let db = dir.path().join("authd.redb").to_str().unwrap().to_owned();
    let envs = [("AUTHD_STORAGE__PATH", db.as_str()), ("AUTHD_ADMIN__SOCKET", sock.as_str())];

    // Default: 0600, so another user cannot even connect.
    let server = Server::start(dir.path(), &envs).await;
    assert_eq!(mode(&socket), Some(0o600));
    let (ok_, out) = as_uid(public.path(), 65534, &envs, &["user", "list"]).await;
    assert!(!ok_ && !out.contains("ann@example.com"), "{out}");
    // A graceful stop removes the socket, so the next server's is the one seen below.
    server.stop().await;
    assert!(!socket.exists());

    // Naming uid 65533 opens the mode; the peer's uid is what decides then.
    let envs2 = [envs[0], envs[1], ("AUTHD_ADMIN__ALLOWED_UIDS", "[65533]")];
    let server = Server::start(dir.path(), &envs2).await;
    for _ in 0..100 {
        if mode(&socket) == Some(0o666) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mode(&socket), Some(0o666));
    let (ok_, out) = as_uid(public.path(), 65534, &envs2, &["user", "list"]).await;
    assert!(!ok_ && out.contains("may not use the admin socket"), "{out}");
    let (ok_, out) = as_uid(public.path(), 65533, &envs2, &["user", "list"]).await;
    assert!(ok_ && out.contains("ann@example.com"), "{out}");
    drop(server);
}
