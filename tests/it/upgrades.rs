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
