//! Mistakes a new operator makes, and what authd says about them: one line per problem, all of
//! them at once, naming the file and line or the environment variable; and a failed start
//! leaves nothing behind.

use std::os::unix::fs::PermissionsExt as _;

use serde_json::Value;

use crate::support::binary::{self, Server};

async fn said(dir: &std::path::Path, file: &str, text: &str) -> String {
    std::fs::write(dir.join(file), text).unwrap();
    let o = binary::run(dir, &["--config", file, "config", "check"], None).await;
    assert!(!o.ok, "{file} should be refused");
    o.stderr
}

#[tokio::test]
async fn config_mistakes_are_told_one_line_each_with_where_and_a_suggestion() {
    let dir = crate::support::private_dir();
    let d = dir.path();

    let e = said(d, "syntax.toml", "[server]\nbind = \"127.0.0.1:8083\n").await;
    assert_eq!(e.trim(), "error: syntax.toml:2:23: invalid basic string", "{e}");

    let e = said(d, "typo.toml", "[server]\nbnd = \"127.0.0.1:8083\"\n").await;
    assert_eq!(e.trim(), "error: typo.toml:2: unknown config key `server.bnd`; did you mean `server.bind`?");

    let e = said(d, "float.toml", "[tokens]\naccess_ttl = 1.5\n").await;
    assert!(e.contains("typo") || e.contains("float.toml:2: config key `tokens.access_ttl`"), "{e}");
    assert!(e.contains("a duration such as") && !e.contains("untagged"), "{e}");

    // Every mistake at once, each on its line.
    let e =
        said(d, "many.toml", "[server]\nbind = \"localhost:8083\"\nbnd = 1\n\n[tokens]\naccess_ttl = \"soon\"\n").await;
    let lines: Vec<&str> = e.trim().trim_start_matches("error: ").lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(
        lines[0].starts_with("many.toml:2: config key `server.bind`: `localhost:8083` is not an IP address"),
        "{e}"
    );
    assert!(lines[0].contains("host names"), "{e}");
    assert_eq!(lines[1], "many.toml:3: unknown config key `server.bnd`; did you mean `server.bind`?");
    assert!(lines[2].starts_with("many.toml:6: config key `tokens.access_ttl`: `soon` is not a duration"), "{e}");

    // A mistake inside a list of tables does not hide the ones after it.
    let e = said(
        d,
        "rules.toml",
        "[server]\nbnd = 1\n\n[[forward_auth.rules]]\nhost = \"app.example.com\"\nrolez = [\"x\"]\n\n[tokens]\naccess_ttl = \"soon\"\n",
    )
    .await;
    assert!(
        e.contains("unknown config key `forward_auth.rules.0.rolez`; did you mean `forward_auth.rules.0.roles`?"),
        "{e}"
    );
    assert!(e.contains("rules.toml:2: unknown config key `server.bnd`"), "{e}");
    assert!(e.contains("rules.toml:9: config key `tokens.access_ttl`"), "{e}");

    // Checks of meaning (ranges, keys that go together) are all told too, with the type mistakes,
    // each where it was written; a key already refused is not blamed again through its default.
    let e = said(
        d,
        "checks.toml",
        "[passwords]\nmin_length = 4\n\n[tokens]\nleeway = \"1h\"\naccess_ttl = \"soon\"\n\n[server]\nbnd = 1\n\n[verification]\nattempts = 0\n",
    )
    .await;
    let lines: Vec<&str> = e.trim().trim_start_matches("error: ").lines().collect();
    assert_eq!(lines.len(), 5, "{e}");
    assert!(lines.iter().any(|l| l.starts_with("checks.toml:6: config key `tokens.access_ttl`: `soon`")), "{e}");
    assert!(lines.contains(&"checks.toml:9: unknown config key `server.bnd`; did you mean `server.bind`?"), "{e}");
    assert!(
        lines.contains(&"checks.toml:2: config key `passwords.min_length`: must be at least 8 (NIST 800-63B)"),
        "{e}"
    );
    assert!(lines.contains(&"checks.toml:5: config key `tokens.leeway`: must be at most 5m"), "{e}");
    assert!(lines.contains(&"checks.toml:12: config key `verification.attempts`: must be between 1 and 100"), "{e}");
    // A misspelt key hides no other problem that merely shares its prefix.
    let e = said(d, "prefix.toml", "[passwords]\nmax = 1\nmin_length = 100\nmax_length = 64\n").await;
    let lines: Vec<&str> = e.trim().trim_start_matches("error: ").lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(lines[0].starts_with("prefix.toml:2: unknown config key `passwords.max`"), "{e}");
    assert_eq!(lines[1], "prefix.toml:3: config key `passwords.min_length`: must not exceed passwords.max_length");
    // A start refuses the same file with the same lines.
    let o = binary::run(d, &["--config", "checks.toml", "serve"], None).await;
    assert!(!o.ok && o.stderr.contains("tokens.leeway") && o.stderr.contains("verification.attempts"), "{}", o.stderr);

    // The same from the environment names the variable.
    let o = binary::authd(d)
        .args(["config", "check"])
        .env("AUTHD_SERVER__BIND", "localhost:1")
        .env("AUTHD_TOKENS__ACESS_TTL", "5m")
        .output()
        .await
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("environment variable AUTHD_SERVER__BIND: config key `server.bind`"), "{e}");
    assert!(
        e.contains("environment variable AUTHD_TOKENS__ACESS_TTL: unknown config key `tokens.acess_ttl`; did you mean `tokens.access_ttl`?"),
        "{e}"
    );
}

#[tokio::test]
async fn a_shared_database_needs_one_issuer_and_secrets_stay_out_of_errors() {
    let dir = crate::support::private_dir();
    let o = binary::authd(dir.path())
        .args(["config", "check"])
        .env_remove("AUTHD_TOKENS__ISSUER")
        .env("AUTHD_STORAGE__BACKEND", "postgres")
        .env("AUTHD_STORAGE__URL", "postgres://authd@127.0.0.1:5/authd")
        .env("AUTHD_SECURITY__DATA_KEY", crate::support::TEST_DATA_KEY)
        .output()
        .await
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("server.public_url") && e.contains("same issuer"), "{e}");
    // A value of the wrong type is named by its type only: it may be a secret.
    let o = binary::authd(dir.path())
        .args(["config", "check"])
        .env("AUTHD_METRICS__TOKEN", "73519468264")
        .output()
        .await
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("AUTHD_METRICS__TOKEN") && e.contains("found an integer"), "{e}");
    assert!(!e.contains("73519468264"), "{e}");
}

#[tokio::test]
async fn a_public_bind_without_a_public_url_is_warned_of() {
    let dir = crate::support::private_dir();
    let o = binary::authd(dir.path())
        .args(["config", "check"])
        .env("AUTHD_SERVER__BIND", "0.0.0.0:8080")
        .output()
        .await
        .unwrap();
    assert!(o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("warning: server.bind 0.0.0.0:8080 is reachable from other hosts but server.public_url is unset"),
        "{e}"
    );
    let o = binary::authd(dir.path())
        .args(["config", "check"])
        .env("AUTHD_SERVER__BIND", "0.0.0.0:8080")
        .env("AUTHD_SERVER__PUBLIC_URL", "https://auth.example.com")
        .output()
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));
}

#[tokio::test]
async fn a_failed_start_leaves_nothing_behind() {
    let root = crate::support::private_dir();
    // The port is taken: no data directory, key, database or socket appears.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = root.path().join("data");
    let o = binary::authd(root.path())
        .arg("serve")
        .env("AUTHD_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("AUTHD_STORAGE__PATH", data.join("authd.redb"))
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot listen on"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!data.exists(), "the failed start made {}", data.display());

    // A directory others can read: refused, and no file made in it.
    let open = root.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = binary::authd(root.path())
        .args(["serve"])
        .env("AUTHD_SERVER__BIND", "127.0.0.1:0")
        .env("AUTHD_STORAGE__PATH", open.join("authd.redb"))
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("chmod 700"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0, "nothing made in a refused directory");

    // storage.path naming a directory is said to be one.
    let dir_as_file = root.path().join("db");
    std::fs::create_dir(&dir_as_file).unwrap();
    std::fs::set_permissions(&dir_as_file, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = binary::authd(root.path())
        .args(["serve"])
        .env("AUTHD_SERVER__BIND", "127.0.0.1:0")
        .env("AUTHD_STORAGE__PATH", &dir_as_file)
        .output()
        .await
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("is a directory: it names the database file"), "{e}");
    drop(taken);
}

#[tokio::test]
async fn the_issuer_follows_the_bound_address_when_no_public_url_is_set() {
    let dir = crate::support::private_dir();
    // No tokens.issuer and no public_url: the address the server got, port included.
    let server =
        Server::spawn(binary::serve(dir.path()).env_remove("AUTHD_TOKENS__ISSUER").args(["--log-format", "json"]))
            .await;
    let d: Value = reqwest::get(server.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["issuer"], server.base.as_str());
    assert_eq!(d["jwks_uri"], format!("{}/.well-known/jwks.json", server.base));
    let (status, _) = server.stop().await;
    assert!(status.success());
}
