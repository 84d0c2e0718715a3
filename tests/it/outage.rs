//! PostgreSQL goes down under a running node, and comes back: readiness fails, writes answer
//! 503 problem+json, token checks keep working from memory, and everything recovers without a
//! restart. The test runs a PostgreSQL server of its own, to stop it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, TestApp, Tokens, assert_problem, use_postgres};

/// A throwaway PostgreSQL cluster on a free loopback port, run by the `postgres` user when the
/// tests run as root (PostgreSQL refuses root).
struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    tls: bool,
}

impl PrivatePostgres {
    fn create() -> Option<Self> {
        Self::create_with(false)
    }

    /// With `tls`, the server takes TLS only, with a certificate for 127.0.0.1 signed by a CA
    /// made for the test (`ca.pem` in its directory).
    fn create_with(tls: bool) -> Option<Self> {
        std::env::var_os("TEST_AUTHD_POSTGRES_URL")?;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .max()?;
        let dir = std::env::temp_dir().join(format!("authd-outage-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir(&dir).unwrap();
        // PostgreSQL wants its directories for the owner only, whatever the umask.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        if rustix::process::geteuid().is_root() {
            assert!(Command::new("chown").arg("postgres:").arg(&dir).status().unwrap().success());
        }
        let port = crate::support::free_port();
        let pg = Self { bin, dir, port, tls };
        let data = pg.dir.join("data");
        pg.run("initdb", &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust"]);
        if tls {
            pg.make_certificates(&data);
        }
        pg.start();
        Some(pg)
    }

    /// A PostgreSQL tool, run as `postgres` under root.
    fn tool(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if rustix::process::geteuid().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let status = self.tool(tool).args(args).output().unwrap();
        assert!(status.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&status.stderr));
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data");
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    fn make_certificates(&self, data: &Path) {
        let sh = format!(
            "set -e; cd {dir}
             openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=authd test CA' 2>/dev/null
             openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null
             printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext 2>/dev/null
             cp server.crt server.key {data}/",
            dir = self.dir.display(),
            data = data.display()
        );
        assert!(Command::new("sh").args(["-c", &sh]).status().unwrap().success(), "test certificates");
        for f in ["server.crt", "server.key"] {
            let p = data.join(f);
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            if rustix::process::geteuid().is_root() {
                assert!(Command::new("chown").arg("postgres:").arg(&p).status().unwrap().success());
            }
        }
    }

    fn start(&self) {
        let ssl = if self.tls { " -c ssl=on" } else { "" };
        let opts =
            format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off{ssl}", self.port, self.dir.display());
        let log = self.dir.join("server.log");
        self.pg_ctl(&["-w", "-l", log.to_str().unwrap(), "-o", &opts, "start"]);
    }

    fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.tool("pg_ctl").args(["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(Path::new(&self.dir));
    }
}

async fn ready(app: &TestApp) -> StatusCode {
    app.http.get(app.url("/readyz")).send().await.unwrap().status()
}

#[tokio::test]
async fn postgres_down_then_back_without_a_restart() {
    let Some(pg) = PrivatePostgres::create() else { return };
    let app = TestApp::spawn_with(|cfg| {
        use_postgres(cfg, &pg.url());
        cfg.storage.connect_timeout = authd::config::HumanDuration::secs(2);
    })
    .await;
    app.register("sam@example.com").await;
    let t = Tokens::from(&app.login("sam@example.com", PASSWORD).await);
    assert_eq!(ready(&app).await, StatusCode::OK);
    assert_eq!(app.status_of_me(&t.access).await, StatusCode::OK);

    pg.stop();
    assert_eq!(ready(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    // Token checks need no database.
    let r = app.post_auth("/v1/authz/check", &t.access, &json!({"permission": "reports:read"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Nor does the profile of a user read lately: `/v1/me` is served from memory.
    let me: serde_json::Value = app.get_auth("/v1/me", &t.access).await.json().await.unwrap();
    assert_eq!(me["email"], "sam@example.com");
    // Writes say so, in the usual format, with nothing about the database's insides.
    let r = app.post("/v1/auth/register", &json!({"email": "tess@example.com", "password": PASSWORD})).await;
    assert!(r.headers().contains_key("retry-after"));
    let body = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable").await;
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");

    pg.start();
    let mut back = false;
    for _ in 0..100 {
        if ready(&app).await == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "ready again once PostgreSQL is back");
    app.register("tess@example.com").await;
    let r = app.refresh(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Nothing written before the outage was lost, and the revocation feed still works.
    let again = Tokens::from(&app.login("sam@example.com", PASSWORD).await);
    assert_eq!(app.post_auth("/v1/auth/logout", &again.access, &json!({})).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.status_of_me(&again.access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tls_to_postgres_is_verified_against_the_configured_ca() {
    let Some(pg) = PrivatePostgres::create_with(true) else { return };
    let ca = pg.dir.join("ca.pem");
    let app = TestApp::spawn_with(|cfg| {
        use_postgres(cfg, &pg.url());
        cfg.storage.tls = true;
        cfg.storage.tls_ca = Some(ca.clone());
    })
    .await;
    app.register("ursula@example.com").await;
    let t = Tokens::from(&app.login("ursula@example.com", PASSWORD).await);
    assert_eq!(app.refresh(&t.refresh).await.status(), StatusCode::OK);

    // The connections really are encrypted: the server says so.
    let tls_connections = {
        let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let row = client
            .query_one("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.application_name = 'authd'", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    assert!(tls_connections >= 1, "authd's connections use TLS");

    // A certificate from another CA is refused: the node does not start.
    let stranger = pg.dir.join("stranger.pem");
    let made = Command::new("sh")
        .args(["-c", &format!("openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -out {} -days 1 -subj '/CN=other' 2>/dev/null", stranger.display())])
        .status()
        .unwrap();
    assert!(made.success());
    let mut cfg = crate::support::test_config(&std::env::temp_dir());
    use_postgres(&mut cfg, &pg.url());
    cfg.storage.tls = true;
    cfg.storage.tls_ca = Some(stranger);
    let refused = authd::server::Application::build(cfg).await.err().map(|e| format!("{e:#}"));
    let refused = refused.expect("a server certificate from an unknown CA is refused");
    assert!(refused.contains("TLS"), "{refused}");
}
