//! Backups: `authd backup` while the server takes writes, `authd restore` into a fresh
//! directory, and what each refuses.

use std::{
    os::unix::fs::PermissionsExt as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    PASSWORD,
    binary::{self, Server},
};

/// Registers users one after another until told to stop; each acknowledged one with its time.
async fn register_until(base: String, client: usize, stop: Arc<Mutex<bool>>, ack: Arc<Mutex<Vec<(String, Instant)>>>) {
    let http = reqwest::Client::new();
    for n in 0.. {
        if *stop.lock().unwrap() {
            return;
        }
        let email = format!("load{client}-{n}@example.com");
        let r = http
            .post(format!("{base}/v1/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        ack.lock().unwrap().push((email, Instant::now()));
    }
}

async fn login(base: &str, email: &str) -> String {
    binary::login(base, email).await["access_token"].as_str().unwrap().to_owned()
}

async fn me(http: &reqwest::Client, base: &str, token: &str) -> StatusCode {
    http.get(format!("{base}/v1/me")).bearer_auth(token).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_write_and_old_tokens_verify() {
    let live = crate::support::private_dir();
    // A copy an interrupted backup left behind goes when the server starts.
    std::fs::create_dir_all(live.path()).unwrap();
    let stale = live.path().join(".backup-01.redb");
    std::fs::write(&stale, b"secrets").unwrap();
    let server = Server::start(live.path(), &[]).await;
    assert!(!stale.exists(), "the stale copy was removed");
    let http = reqwest::Client::new();
    binary::register(&server.base, "alice@example.com").await;
    let token = login(&server.base, "alice@example.com").await;

    // Writers go on while the backup is taken, through the admin socket.
    let stop = Arc::new(Mutex::new(false));
    let ack = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> =
        (0..3).map(|c| tokio::spawn(register_until(server.base.clone(), c, stop.clone(), ack.clone()))).collect();
    // Until the writers have written a few (registering hashes a password: slow on a busy box).
    let deadline = Instant::now() + Duration::from_secs(30);
    while ack.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the writers wrote nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let backups = crate::support::private_dir();
    let file = backups.path().join("authd.backup");
    let file_arg = file.to_str().unwrap();
    let began = Instant::now();
    let said =
        binary::ok(live.path(), &["backup", "--to", file_arg, "--passphrase-stdin"], Some("long walk home\n")).await;
    *stop.lock().unwrap() = true;
    for w in writers {
        w.await.unwrap();
    }
    assert!(said.contains("sealed with the passphrase"), "{said}");
    let before: Vec<String> =
        ack.lock().unwrap().iter().filter(|(_, at)| *at < began).map(|(e, _)| e.clone()).collect();
    assert!(before.len() >= 3, "the writers wrote before the backup began");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    // A backup never overwrites.
    binary::fails(live.path(), &["backup", "--to", file_arg], "already exists").await;

    // A restore is refused where the server runs, whatever --force says.
    let o = binary::run(live.path(), &["restore", "--from", file_arg, "--force"], Some("long walk home\n")).await;
    assert!(!o.ok && o.stderr.contains("stop it"), "{}", o.stderr);

    // Into a fresh directory: a wrong passphrase changes nothing there.
    let fresh = crate::support::private_dir();
    let o = binary::run(fresh.path(), &["restore", "--from", file_arg], Some("short walk\n")).await;
    assert!(!o.ok && o.stderr.contains("wrong passphrase"), "{}", o.stderr);
    let left: Vec<_> = std::fs::read_dir(fresh.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "a refused restore left {left:?}");
    let said = binary::ok(fresh.path(), &["restore", "--from", file_arg], Some("long walk home\n")).await;
    assert!(said.contains("restored"), "{said}");
    assert!(
        std::fs::read(fresh.path().join("authd.key")).unwrap() == std::fs::read(live.path().join("authd.key")).unwrap(),
        "the data key came along"
    );
    for f in ["authd.redb", "authd.key"] {
        let mode = std::fs::metadata(fresh.path().join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // Now a database is there: replacing it wants --force.
    binary::fails(fresh.path(), &["restore", "--from", file_arg], "--force").await;

    let restored = Server::start(fresh.path(), &[]).await;
    assert_eq!(me(&http, &restored.base, &token).await, StatusCode::OK, "a token issued before verifies");
    let listed = binary::ok(fresh.path(), &["user", "list", "--json"], None).await;
    let users: Vec<Value> = serde_json::from_str(&listed).unwrap();
    let emails: Vec<&str> = users.iter().filter_map(|u| u["email"].as_str()).collect();
    for e in before.iter().chain(std::iter::once(&"alice@example.com".to_owned())) {
        assert!(emails.contains(&e.as_str()), "{e} was acknowledged before the backup began and is missing");
    }
    // The restored copy signs in and the original goes on unchanged.
    let again = login(&restored.base, &before[0]).await;
    assert_eq!(me(&http, &restored.base, &again).await, StatusCode::OK);
    assert_eq!(me(&http, &server.base, &token).await, StatusCode::OK);
    let (status, _) = restored.stop().await;
    assert!(status.success());

    // With the server down the file is copied directly; unsealed, it is a plain tar archive.
    let (status, _) = server.stop().await;
    assert!(status.success());
    let plain = backups.path().join("plain.tar");
    binary::ok(live.path(), &["backup", "--to", plain.to_str().unwrap()], None).await;
    let listed = std::process::Command::new("tar").arg("-tf").arg(&plain).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "manifest.json\nauthd.redb\nauthd.key\nSHA256SUMS\n");
    // A damaged copy (one byte of the database, wherever it falls) is refused before anything
    // is replaced.
    let mut bytes = std::fs::read(&plain).unwrap();
    let at = 2048 + (bytes.len() - 8192) / 2;
    bytes[at] ^= 0xff;
    let damaged = backups.path().join("damaged.tar");
    std::fs::write(&damaged, bytes).unwrap();
    let before_restore = std::fs::read(fresh.path().join("authd.redb")).unwrap();
    let o = binary::run(fresh.path(), &["restore", "--from", damaged.to_str().unwrap(), "--force"], None).await;
    assert!(!o.ok && o.stderr.contains("cannot be restored"), "{}", o.stderr);
    assert!(std::fs::read(fresh.path().join("authd.redb")).unwrap() == before_restore, "nothing was replaced");
    let o = binary::run(fresh.path(), &["restore", "--from", plain.to_str().unwrap(), "--force"], None).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains("authd.redb.before-restore-") && o.stdout.contains("authd.key.before-restore-"),
        "{}",
        o.stdout
    );
}
