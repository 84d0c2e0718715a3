//! Upgrades: a database written by an earlier release opens in this one and goes on serving.
//!
//! `tests/fixtures/redb/schema-N.tar` is a backup (`authd backup`) of a database made by
//! [`make_fixture`] through the real binary of the release whose redb schema was N, with
//! `schema-N.json` saying what it holds. Every schema version from 4 on has one, and one test
//! here. When the schema changes, run
//! `TEST_AUTHD_WRITE_FIXTURE=1 cargo test --test it upgrades::write_the_fixture_of_this_schema`
//! and add a test for the new file; the old ones stay.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    mfa::code_at,
    support::{
        PASSWORD,
        binary::{self, Server},
    },
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redb")
}

async fn post(http: &reqwest::Client, url: String, body: Value, bearer: Option<&str>) -> reqwest::Response {
    let mut r = http.post(url).json(&body);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    r.send().await.unwrap()
}

async fn login(http: &reqwest::Client, server: &Server, who: &str) -> Value {
    post(http, server.url("/v1/auth/login"), json!({"login": who, "password": PASSWORD}), None)
        .await
        .json()
        .await
        .unwrap()
}

/// A database with one of each thing worth keeping across an upgrade, made in `dir` through the
/// real binary; what a later release must find in it.
async fn make_fixture(dir: &Path) -> Value {
    binary::ok(
        dir,
        &["user", "add", "root@example.com", "--role", "admin", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    binary::ok(dir, &["role", "add", "support", "--perm", "users:read", "--perm", "audit:read"], None).await;
    let server = Server::start(dir, &[]).await;
    let http = reqwest::Client::new();
    for who in ["plain@example.com", "totp@example.com", "gone@example.com"] {
        let r = post(&http, server.url("/v1/auth/register"), json!({"email": who, "password": PASSWORD}), None).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    binary::ok(dir, &["user", "set-role", "plain@example.com", "user", "support"], None).await;
    // A second factor: its secret is sealed with the data key.
    let t = login(&http, &server, "totp@example.com").await;
    let access = t["access_token"].as_str().unwrap();
    let e: Value = post(&http, server.url("/v1/me/mfa/totp"), json!({}), Some(access)).await.json().await.unwrap();
    let secret = e["secret"].as_str().unwrap().to_owned();
    let code = code_at(&secret, authd::model::now());
    let r = post(&http, server.url("/v1/me/mfa/totp/confirm"), json!({"code": code}), Some(access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A session ended: its refresh token must stay dead.
    let t = login(&http, &server, "gone@example.com").await;
    let dead_refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let r = post(&http, server.url("/v1/auth/logout"), json!({}), t["access_token"].as_str()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A service client.
    let admin = login(&http, &server, "root@example.com").await;
    let admin = admin["access_token"].as_str().unwrap();
    let c: Value =
        post(&http, server.url("/v1/admin/clients"), json!({"name": "billing", "roles": ["support"]}), Some(admin))
            .await
            .json()
            .await
            .unwrap();
    let (status, _) = server.stop().await;
    assert!(status.success());
    json!({
        "totp_secret": secret,
        "dead_refresh": dead_refresh,
        "client_id": c["client_id"],
        "client_secret": c["client_secret"],
    })
}

/// Restores fixture `schema`, starts this build on it, and checks that everything in it works.
async fn opens_and_serves(schema: u64) {
    let backup = fixtures().join(format!("schema-{schema}.tar"));
    let facts: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("schema-{schema}.json"))).unwrap())
            .unwrap();
    let dir = crate::support::private_dir();
    binary::ok(dir.path(), &["restore", "--from", backup.to_str().unwrap()], None).await;
    let server = Server::start(dir.path(), &[]).await;
    let http = reqwest::Client::new();
    // Passwords and roles.
    let t = login(&http, &server, "plain@example.com").await;
    let access = t["access_token"].as_str().unwrap();
    let me: Value = http.get(server.url("/v1/me")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert!(me["roles"].as_array().unwrap().contains(&json!("support")), "{me}");
    // The sealed second factor opens with the data key that came along.
    let r = post(&http, server.url("/v1/auth/login"), json!({"login": "totp@example.com", "password": PASSWORD}), None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "mfa_required", "{p}");
    let code = code_at(facts["totp_secret"].as_str().unwrap(), authd::model::now());
    let r =
        post(&http, server.url("/v1/auth/login/mfa"), json!({"mfa_token": p["mfa_token"], "code": code}), None).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // An ended session stays ended.
    let r = post(&http, server.url("/v1/auth/refresh"), json!({"refresh_token": facts["dead_refresh"]}), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The service client's secret still works.
    let r = http
        .post(server.url("/v1/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", facts["client_id"].as_str().unwrap()),
            ("client_secret", facts["client_secret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The audit log reads, and the console's counts were built for it.
    let listed = binary::ok(dir.path(), &["audit", "--json", "--event", "user.logged_in"], None).await;
    assert!(listed.lines().count() >= 3, "{listed}");
    let (status, _) = server.stop().await;
    assert!(status.success());
}

/// Writes the fixture of this build's schema when asked to (`TEST_AUTHD_WRITE_FIXTURE=1`); otherwise
/// checks that it exists, so that a schema change cannot land without one.
#[tokio::test]
async fn write_the_fixture_of_this_schema() {
    let version = authd::store::REDB_SCHEMA_VERSION;
    let backup = fixtures().join(format!("schema-{version}.tar"));
    if std::env::var_os("TEST_AUTHD_WRITE_FIXTURE").is_none() {
        assert!(
            backup.is_file(),
            "no fixture for redb schema {version}: run this test with TEST_AUTHD_WRITE_FIXTURE=1"
        );
        return;
    }
    let dir = crate::support::private_dir();
    let facts = make_fixture(dir.path()).await;
    let _ = std::fs::remove_file(&backup);
    binary::ok(dir.path(), &["backup", "--to", backup.to_str().unwrap()], None).await;
    std::fs::write(
        fixtures().join(format!("schema-{version}.json")),
        serde_json::to_string_pretty(&facts).unwrap() + "\n",
    )
    .unwrap();
}

#[tokio::test]
async fn a_schema_4_database_opens_and_serves() {
    opens_and_serves(4).await;
}

#[tokio::test]
async fn a_dry_run_says_what_an_upgrade_would_do_and_changes_nothing() {
    let dir = crate::support::private_dir();
    let d = dir.path();
    let backup = fixtures().join("schema-4.tar");
    binary::ok(d, &["restore", "--from", backup.to_str().unwrap()], None).await;
    let out = binary::ok(d, &["migrate", "--dry-run"], None).await;
    assert!(out.contains(": schema 4") && out.contains("nothing to change"), "{out}");

    // A file as schema 3 left it: the dry run names the step and the file stays as it was.
    let path = d.join("authd.redb");
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap().insert("schema_version", 3).unwrap();
        tx.delete_table(redb::TableDefinition::<(&str, u64), u64>::new("audit_counts")).unwrap();
        tx.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let out = binary::ok(d, &["migrate", "--dry-run"], None).await;
    assert!(
        out.contains(": schema 3") && out.contains("would apply 4: count sign-ins and failures per minute"),
        "{out}"
    );
    assert!(std::fs::read(&path).unwrap() == before, "a dry run changed the file");
    // Opening it for real takes the step.
    let out = binary::ok(d, &["user", "list"], None).await;
    assert!(out.contains("plain@example.com"), "{out}");
    let out = binary::ok(d, &["migrate", "--dry-run"], None).await;
    assert!(out.contains(": schema 4"), "{out}");

    // PostgreSQL: every migration would be applied to an empty database, and none is.
    let Some(url) = crate::support::postgres_db().await else { return };
    let o = binary::authd(d)
        .args(["migrate", "--dry-run"])
        .env("AUTHD_STORAGE__BACKEND", "postgres")
        .env("AUTHD_STORAGE__URL", &url)
        .env("AUTHD_SECURITY__DATA_KEY", crate::support::TEST_DATA_KEY)
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains(": schema 0") && out.contains("would apply 1:") && out.contains("would apply 9:"), "{out}");
    // With --from: what would be copied, and still nothing written.
    let out = binary::ok(d, &["migrate", "--from", path.to_str().unwrap(), "--to", &url, "--dry-run"], None).await;
    assert!(out.contains("users") && out.contains("would apply 9:") && out.contains("nothing was copied"), "{out}");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let exists: bool =
        client.query_one("SELECT to_regclass('authd_migrations') IS NOT NULL", &[]).await.unwrap().get(0);
    assert!(!exists, "a dry run created tables");
}

/// The previous release's binary (`.ci/previous-release`), or why there is none.
fn previous_release() -> Option<PathBuf> {
    match std::env::var("TEST_AUTHD_PREVIOUS_BIN") {
        Ok(v) if v.starts_with("none:") => {
            eprintln!("rolling-upgrade test skipped: {v}");
            None
        }
        Ok(v) => Some(PathBuf::from(v)),
        Err(_) => crate::support::unavailable(
            "The previous release's binary",
            "set TEST_AUTHD_PREVIOUS_BIN: eval \"$(.ci/services start)\" builds it",
        ),
    }
}

/// A rolling upgrade on PostgreSQL: a node of the previous release and one of this build serve
/// the same database side by side, each honouring what the other wrote, until the last old node
/// is replaced.
#[tokio::test]
async fn nodes_of_adjacent_releases_serve_one_database_side_by_side() {
    let Some(previous) = previous_release() else { return };
    let Some(url) = crate::support::postgres_db().await else { return };
    let config = crate::support::postgres_config(&url);
    let (old_dir, new_dir) = (crate::support::private_dir(), crate::support::private_dir());
    for d in [&old_dir, &new_dir] {
        std::fs::write(d.path().join("config.toml"), &config).unwrap();
    }
    let old = Server::spawn(binary::serve_from(&previous, old_dir.path()).args(["--log-format", "json"])).await;
    let http = reqwest::Client::new();
    let r =
        post(&http, old.url("/v1/auth/register"), json!({"email": "alice@example.com", "password": PASSWORD}), None)
            .await;
    assert_eq!(r.status(), StatusCode::CREATED, "the previous release registers");
    let first = login(&http, &old, "alice@example.com").await;

    // This build joins: it migrates what it needs while the old node serves on.
    let new = Server::start(new_dir.path(), &[]).await;
    let me = |server: &Server, token: &Value| {
        http.get(server.url("/v1/me")).bearer_auth(token["access_token"].as_str().unwrap()).send()
    };
    assert_eq!(me(&new, &first).await.unwrap().status(), StatusCode::OK, "a token of the old node verifies");
    let refresh = |server: &Server, token: &Value| {
        post(&http, server.url("/v1/auth/refresh"), json!({"refresh_token": token["refresh_token"]}), None)
    };
    let r = refresh(&new, &first).await;
    assert_eq!(r.status(), StatusCode::OK, "the new node rotates an old node's refresh token");
    let second: Value = r.json().await.unwrap();
    assert_eq!(me(&old, &second).await.unwrap().status(), StatusCode::OK, "and the old node takes its token");
    let r = refresh(&old, &second).await;
    assert_eq!(r.status(), StatusCode::OK, "the old node rotates the new node's refresh token");
    let third: Value = r.json().await.unwrap();
    // A spent token replayed on either node ends the whole family, on both.
    assert_eq!(refresh(&old, &first).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&new, &third).await.status(), StatusCode::UNAUTHORIZED, "the family ended on both nodes");

    // Accounts made on either node sign in on the other, and a sign-out on one holds on both.
    let r = post(&http, new.url("/v1/auth/register"), json!({"email": "bob@example.com", "password": PASSWORD}), None)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let bob = login(&http, &old, "bob@example.com").await;
    assert_eq!(me(&new, &bob).await.unwrap().status(), StatusCode::OK);
    let access = bob["access_token"].as_str().unwrap();
    let r = post(&http, new.url("/v1/auth/logout"), json!({}), Some(access)).await;
    assert!(r.status().is_success(), "sign-out on the new node: {}", r.status());
    let mut refused = false;
    for _ in 0..100 {
        if me(&old, &bob).await.unwrap().status() == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the old node refuses a token signed out on the new one");
    assert_eq!(refresh(&old, &bob).await.status(), StatusCode::UNAUTHORIZED);

    // The upgrade ends: the old node is replaced by this build, on the same directory.
    let (status, log) = old.stop().await;
    assert!(status.success(), "the old node stops cleanly:\n{}", log.join("\n"));
    let replaced = Server::start(old_dir.path(), &[]).await;
    let again = login(&http, &replaced, "alice@example.com").await;
    assert_eq!(me(&new, &again).await.unwrap().status(), StatusCode::OK);
    replaced.stop().await;
    new.stop().await;
}

/// A node restarting in the middle of a rolling upgrade: the next release migrated the database
/// already. It starts when every newer migration says nodes of its schema serve on, and is
/// refused otherwise.
#[tokio::test]
async fn a_node_restarting_mid_upgrade_starts_when_the_newer_migrations_allow_it() {
    let Some(url) = crate::support::postgres_db().await else { return };
    let dir = crate::support::private_dir();
    let config = crate::support::postgres_config(&url);
    std::fs::write(dir.path().join("config.toml"), &config).unwrap();
    Server::start(dir.path(), &[]).await.stop().await;
    let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    // What the next release would record for an additive migration, and a table it made.
    db.batch_execute(
        "CREATE TABLE next_release_things (id bigint); \
         INSERT INTO authd_migrations (version, serves_from) \
         SELECT 1000, max(version) FROM authd_migrations",
    )
    .await
    .unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let http = reqwest::Client::new();
    let r =
        post(&http, server.url("/v1/auth/register"), json!({"email": "mid@example.com", "password": PASSWORD}), None)
            .await;
    assert_eq!(r.status(), StatusCode::CREATED, "the node serves on the newer, additive schema");
    let (status, log) = server.stop().await;
    assert!(status.success());
    assert!(log.iter().any(|l| l.contains("migrated by a newer authd")), "it says to upgrade: {log:#?}");
    let applied: i64 =
        db.query_one("SELECT count(*) FROM authd_migrations WHERE version = 1000", &[]).await.unwrap().get(0);
    assert_eq!(applied, 1, "nothing of the newer release was undone");

    // The release after that serves only its predecessor's nodes: this one, now two behind, is
    // kept out; and so it is by a change no older node may serve on.
    for (version, serves_from) in [("1001", "1000"), ("1002", "NULL")] {
        db.batch_execute(&format!(
            "INSERT INTO authd_migrations (version, serves_from) VALUES ({version}, {serves_from})"
        ))
        .await
        .unwrap();
        let refused = binary::fails(dir.path(), &["serve"], "newer authd");
        tokio::time::timeout(std::time::Duration::from_secs(60), refused)
            .await
            .expect("the start is refused, not made");
        let o = binary::run(dir.path(), &["migrate", "--dry-run"], None).await;
        assert!(!o.ok && o.stderr.contains("newer authd"), "{}", o.stderr);
        db.batch_execute(&format!("DELETE FROM authd_migrations WHERE version = {version}")).await.unwrap();
    }
}
