//! The real `authd` binary: against a stopped server (opening the database) and a running one
//! (through the admin socket).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    PASSWORD, TestApp, Tokens, assert_problem,
    binary::{Server, authd, fails, ok, run},
    claims_of, header_of,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_users_and_keys_with_the_server_down() {
    let dir = crate::support::private_dir();
    let d = dir.path();
    let out = ok(
        d,
        &["user", "add", "alice@example.com", "--role", "admin", "--password-stdin"],
        Some("first passphrase!\n"),
    )
    .await;
    assert!(out.starts_with("created: alice@example.com"), "{out}");
    ok(d, &["user", "add", "bob", "--phone", "+14155552671"], None).await;
    // A second admin, so alice may be demoted (the last admin never can).
    ok(d, &["user", "add", "root@example.com", "--role", "admin"], None).await;

    let list = ok(d, &["user", "list"], None).await;
    assert!(list.lines().next().unwrap().starts_with("ID"), "{list}");
    assert!(list.contains("alice@example.com") && list.contains("admin") && list.contains("active"), "{list}");
    assert!(list.contains("bob") || list.contains("+14155552671"), "{list}");

    let show = ok(d, &["user", "show", "alice@example.com"], None).await;
    assert!(show.contains("roles:     admin") && show.contains("password:  set"), "{show}");

    ok(d, &["user", "set-role", "alice@example.com", "moderator", "user"], None).await;
    ok(d, &["user", "passwd", "alice@example.com", "--password-stdin"], Some("second passphrase!\n")).await;
    ok(d, &["user", "disable", "alice@example.com"], None).await;
    let shown: Value =
        serde_json::from_str(&ok(d, &["user", "show", "alice@example.com", "--json"], None).await).unwrap();
    assert_eq!(shown["status"], "disabled");
    assert_eq!(shown["roles"], json!(["moderator", "user"]));
    ok(d, &["user", "enable", "alice@example.com"], None).await;

    // Clear errors, and nothing changes.
    fails(d, &["user", "show", "nobody@example.com"], "user not found").await;
    fails(d, &["user", "add", "alice@EXAMPLE.com"], "email is already taken").await;
    fails(d, &["user", "add", "not-an-email@"], "not a valid email").await;
    fails(d, &["user", "set-role", "alice@example.com", "overlord"], "unknown role `overlord`").await;
    let o = run(d, &["user", "passwd", "alice@example.com", "--password-stdin"], Some("password1234\n")).await;
    assert!(!o.ok && o.stderr.contains("commonly used"), "{}", o.stderr);

    let keys = ok(d, &["keys", "list"], None).await;
    // One active key per algorithm: EdDSA signs access tokens, RS256 (and ES256 on request) ID tokens.
    assert_eq!(keys.lines().count(), 4, "{keys}");
    for alg in ["EdDSA", "ES256", "RS256"] {
        assert!(keys.lines().any(|l| l.contains(alg) && l.contains("active")), "{keys}");
    }
    let rotated = ok(d, &["keys", "rotate"], None).await;
    let new_kid = rotated.split_whitespace().nth(4).unwrap().to_owned();
    let keys = ok(d, &["keys", "list"], None).await;
    assert!(keys.contains("retiring") && keys.contains(&new_kid), "{keys}");

    // The server picks all of it up.
    let app = TestApp::start_in(dir).await;
    let t = Tokens::from(&app.login("alice@example.com", "second passphrase!").await);
    assert_eq!(header_of(&t.access)["kid"], new_kid.as_str());
    let me: Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["roles"], json!(["moderator", "user"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reaches_a_running_server_through_the_admin_socket() {
    let mut app = TestApp::spawn().await;
    let d = app.dir.path().to_owned();
    let sock = app.cfg.admin_socket_path();
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let t = app.signed_in("carl@example.com").await;

    // A role change takes effect at once: the old token is refused, a refresh carries the role.
    ok(&d, &["user", "set-role", "carl@example.com", "moderator"], None).await;
    assert_problem(app.get_auth("/v1/me", &t.access).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    let t = Tokens::from(&app.refresh(&t.refresh).await.json::<Value>().await.unwrap());
    assert_eq!(claims_of(&t.access)["roles"], json!(["moderator"]));

    // A rotated key signs the very next token.
    let rotated = ok(&d, &["keys", "rotate"], None).await;
    let new_kid = rotated.split_whitespace().nth(4).unwrap().to_owned();
    let next = Tokens::from(&app.login("carl@example.com", PASSWORD).await);
    assert_eq!(header_of(&next.access)["kid"], new_kid.as_str());

    // Users added by the CLI can sign in right away.
    ok(&d, &["user", "add", "dora@example.com", "--password-stdin"], Some("blue harbor lantern\n")).await;
    app.login("dora@example.com", "blue harbor lantern").await;

    // Disabling ends the sessions at once.
    ok(&d, &["user", "disable", "carl@example.com"], None).await;
    assert_eq!(app.status_of_me(&next.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&next.refresh).await.status(), StatusCode::UNAUTHORIZED);
    ok(&d, &["user", "passwd", "dora@example.com", "--password-stdin"], Some("green harbor lantern\n")).await;
    app.login("dora@example.com", "green harbor lantern").await;
    fails(&d, &["user", "show", "nobody@example.com"], "user not found").await;

    // The same command prints the same, server up or down.
    let up = ok(&d, &["user", "list"], None).await;
    let keys_up = ok(&d, &["keys", "list"], None).await;
    app.shutdown().await;
    assert!(!sock.exists(), "socket removed on shutdown");
    assert_eq!(ok(&d, &["user", "list"], None).await, up);
    assert_eq!(ok(&d, &["keys", "list"], None).await, keys_up);
    ok(&d, &["user", "delete", "dora@example.com"], None).await;
    assert!(!ok(&d, &["user", "list"], None).await.contains("dora"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_explains_a_database_held_by_another_process() {
    let dir = crate::support::private_dir();
    // Holds the database without serving the admin socket.
    let svc = authd::service::AuthService::open(crate::support::test_config(dir.path())).await.unwrap();
    let o = run(dir.path(), &["user", "list"], None).await;
    assert!(!o.ok);
    assert!(o.stderr.contains("held by another process"), "{}", o.stderr);
    assert!(!o.stderr.contains("Cannot acquire lock"), "{}", o.stderr);
    drop(svc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_prints_the_effective_config_and_names_bad_keys() {
    let dir = crate::support::private_dir();
    let d = dir.path();
    let out = ok(d, &["config", "check"], None).await;
    assert!(out.contains("[tokens]") && out.contains("access_ttl = \"15m\""), "{out}");
    let o = {
        let mut c = authd(d);
        c.args(["config", "check"]).env("AUTHD_TOKENS__ACCESS_TTL", "5m");
        c.output().await.unwrap()
    };
    assert!(String::from_utf8_lossy(&o.stdout).contains("access_ttl = \"5m\""));

    let cases = [
        ("AUTHD_TOKENS__ACCESS_TTL", "soon", "tokens.access_ttl"),
        ("AUTHD_SERVER__BIND", "nowhere", "server.bind"),
        ("AUTHD_PASSWORDS__MIN_LENGTH", "4", "passwords.min_length"),
        ("AUTHD_TOKENS__ALGORITHM", "HS256", "tokens.algorithm"),
        ("AUTHD_BRUTE_FORCE__FORGET_AFTER", "2000years", "brute_force.forget_after"),
        ("AUTHD_SERVER__MAX_BODY_BYTES", "0", "server.max_body_bytes"),
        ("AUTHD_SERVER__HEADER_TIMEOUT", "0s", "server.header_timeout"),
        ("AUTHD_RATE_LIMIT__IPV6_PREFIX", "8", "rate_limit.ipv6_prefix"),
        ("AUTHD_WEBHOOK_DELIVERY__TIMEOUT", "1year", "webhook_delivery.timeout"),
        ("AUTHD_CHALLENGE__KIND", "turnstile", "challenge.secret"),
    ];
    for (key, value, named) in cases {
        let o = authd(d).args(["config", "check"]).env(key, value).output().await.unwrap();
        assert!(!o.status.success(), "{key}={value}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(named), "{key}={value}: {err}");
    }
    // Out of range at start: a clear message, not a panic.
    let o = authd(d).args(["serve"]).env("AUTHD_BRUTE_FORCE__FORGET_AFTER", "2000years").output().await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("brute_force.forget_after") && !err.contains("panicked"), "{err}");
    std::fs::write(d.join("bad.toml"), "[tokens]\naccess_tll = \"5m\"\n").unwrap();
    fails(d, &["--config", "bad.toml", "config", "check"], "access_tll").await;
    fails(d, &["--config", "missing.toml", "config", "check"], "does not exist").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_logs_json_without_secrets_and_stops_cleanly_on_sigterm() {
    let dir = crate::support::private_dir();
    let d = dir.path();
    let server = Server::start(d, &[]).await;
    let http = reqwest::Client::new();
    let url = |p: &str| server.url(p);
    let secret = "a very secret passphrase";
    let r = http
        .post(url("/v1/auth/register"))
        .json(&json!({"email": "eve@example.com", "password": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let bad = http
        .post(url("/v1/auth/login"))
        .json(&json!({"login": "eve@example.com", "password": "wrong guess here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let t: Value = http
        .post(url("/v1/auth/login"))
        .json(&json!({"login": "eve@example.com", "password": secret}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    drop(http);

    let (status, log) = server.stop().await;
    assert!(status.success(), "clean exit on SIGTERM");
    for line in &log {
        serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("log lines are JSON: {line}"));
    }
    let log = log.join("\n");
    assert!(log.contains("login ok") && log.contains("auth_event=login_failed ip=127.0.0.1"), "{log}");
    for s in [secret, "wrong guess here", access.as_str(), refresh.as_str()] {
        assert!(!log.contains(s), "a secret leaked into the log");
    }
    // The database was closed: the CLI opens it directly.
    assert!(ok(d, &["user", "list"], None).await.contains("eve@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_roles() {
    let dir = crate::support::private_dir();
    let d = dir.path();
    let list = ok(d, &["role", "list"], None).await;
    for builtin in ["admin", "moderator", "user"] {
        assert!(list.contains(builtin), "{list}");
    }
    assert!(ok(d, &["role", "add", "support", "--perm", "tickets:read"], None).await.starts_with("created: support"));
    ok(d, &["role", "grant", "support", "--perm", "tickets:write", "--perm", "users:read"], None).await;
    let out = ok(d, &["role", "revoke", "support", "--perm", "users:read"], None).await;
    assert!(out.contains("tickets:read tickets:write") && !out.contains("users:read"), "{out}");
    fails(d, &["role", "add", "support"], "already taken").await;
    fails(d, &["role", "add", "x2", "--perm", "NOT VALID"], "not a permission").await;
    fails(d, &["role", "revoke", "admin", "--perm", "*"], "always keeps").await;
    fails(d, &["role", "delete", "user"], "built in").await;
    ok(d, &["user", "add", "sam@example.com", "--role", "support"], None).await;
    fails(d, &["role", "delete", "support"], "held by 1 user").await;
    ok(d, &["role", "delete", "support", "--force"], None).await;
    let shown: Value =
        serde_json::from_str(&ok(d, &["user", "show", "sam@example.com", "--json"], None).await).unwrap();
    assert_eq!(shown["roles"], json!(["user"]));
    // The last admin stays.
    ok(d, &["user", "add", "root@example.com", "--role", "admin"], None).await;
    fails(d, &["user", "set-role", "root@example.com", "user"], "no active admin").await;
    fails(d, &["user", "disable", "root@example.com"], "no active admin").await;
    fails(d, &["user", "delete", "root@example.com"], "no active admin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reads_exports_and_follows_the_audit_log() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let app = TestApp::spawn().await;
    let d = app.dir.path().to_owned();
    app.register("first@example.com").await;
    app.post("/v1/auth/login", &json!({"login": "first@example.com", "password": "wrong wrong wrong"})).await;
    app.svc().flush().await;

    let out = ok(&d, &["audit", "--json", "--event", "user"], None).await;
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["user.registered", "user.login_failed"], "oldest first");
    // Times in --json are RFC 3339, whatever the record keeps.
    let rfc3339 = |v: &Value| v.as_str().is_some_and(|s| humantime::parse_rfc3339(s).is_ok());
    assert!(events.iter().all(|e| rfc3339(&e["time"]) && e.get("time_ms").is_none()), "{events:?}");
    let keys: Vec<Value> = serde_json::from_str(&ok(&d, &["keys", "list", "--json"], None).await).unwrap();
    assert!(!keys.is_empty() && keys.iter().all(|k| rfc3339(&k["created_at"])), "{keys:?}");
    let table = ok(&d, &["audit", "--user", "first@example.com", "--outcome", "failure"], None).await;
    assert!(table.contains("user.login_failed") && !table.contains("user.registered"), "{table}");
    fails(&d, &["audit", "--since", "last tuesday"], "neither an RFC 3339 time").await;

    // --follow prints what happens next.
    let mut child = authd(&d).args(["audit", "--follow", "--json", "--limit", "0"]).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // It starts after the newest event of the moment it has asked: a sign-up made while it
    // still starts is not printed, so sign up again until one is.
    let mut signups = 0;
    let line = loop {
        signups += 1;
        app.register(&format!("second{signups}@example.com")).await;
        match tokio::time::timeout(std::time::Duration::from_secs(3), lines.next_line()).await {
            Ok(line) => break line.unwrap().unwrap(),
            Err(_) => assert!(signups < 10, "--follow printed nothing in 30 s"),
        }
    };
    let e: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["event"], "user.registered");
    let _ = child.kill().await;

    let export = ok(&d, &["audit", "export", "--since", "1h"], None).await;
    let exported: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), 2 + signups, "{export}");
    assert_eq!(exported.last().unwrap()["details"]["roles"], json!(["user"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printing_mail_to_the_log_is_flagged_on_a_public_bind() {
    let dir = crate::support::private_dir();
    let server = Server::start(dir.path(), &[("AUTHD_SERVER__BIND", "0.0.0.0:0")]).await;
    let log = server.log().join("\n");
    assert!(log.contains("email.transport is `log`") && log.contains("sms.transport is `log`"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_registers_applications_with_the_server_down_or_up() {
    let dir = crate::support::private_dir();
    let d = dir.path();
    // Server down: a confidential relying party, its secret shown once in one JSON object.
    let out = ok(
        d,
        &[
            "client",
            "add",
            "Photos",
            "--redirect-uri",
            "https://photos.example/callback",
            "--post-logout-redirect-uri",
            "https://photos.example/",
            "--trusted",
            "--json",
        ],
        None,
    )
    .await;
    let photos: Value = serde_json::from_str(out.trim()).unwrap();
    let (id, secret) = (photos["client_id"].as_str().unwrap().to_owned(), photos["client_secret"].as_str().unwrap());
    assert_eq!(photos["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(photos["redirect_uris"], json!(["https://photos.example/callback"]));
    assert_eq!(photos["trusted"], true);
    // A public client has no secret; a bad redirect URI or method changes nothing.
    let out =
        ok(d, &["client", "add", "Mobile", "--public", "--redirect-uri", "com.example.app:/cb", "--json"], None).await;
    let mobile: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(mobile.get("client_secret").is_none() && mobile["token_endpoint_auth_method"] == "none", "{mobile}");
    fails(d, &["client", "add", "Bad", "--redirect-uri", "http://evil.example/cb"], "http only to localhost").await;
    fails(
        d,
        &["client", "add", "Bad", "--redirect-uri", "https://a.example/cb", "--token-endpoint-auth-method", "magic"],
        "client_secret_basic, client_secret_post or none",
    )
    .await;
    let list = ok(d, &["client", "list"], None).await;
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains("Photos") && list.contains("Mobile") && !list.contains("Bad"), "{list}");
    assert!(!ok(d, &["client", "show", &id], None).await.contains(secret), "a secret is shown once");

    // Server up: the client's secret works at the token endpoint; rotation goes through the socket.
    let app = TestApp::start_in(dir).await;
    let d = app.dir.path().to_owned();
    let token = |secret: String| {
        let http = app.http.clone();
        let (url, id) = (app.url("/v1/token"), id.clone());
        async move {
            http.post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(token(secret.to_owned()).await, StatusCode::OK);
    let out = ok(&d, &["client", "rotate-secret", &id, "--json"], None).await;
    let rotated: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(token(secret.to_owned()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(token(rotated["client_secret"].as_str().unwrap().to_owned()).await, StatusCode::OK);
    ok(&d, &["client", "remove", &id], None).await;
    assert_eq!(token(rotated["client_secret"].as_str().unwrap().to_owned()).await, StatusCode::UNAUTHORIZED);
    fails(&d, &["client", "show", &id], "client not found").await;
}
