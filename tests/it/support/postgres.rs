//! PostgreSQL for the tests: a fresh database on the shared test server (`.ci/services`), or a
//! cluster of a test's own that it may stop and start.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use authd::config::{Config, Secret, StorageBackend};

/// The data key every node of a test cluster shares.
pub const TEST_DATA_KEY: &str = "dGVzdC1kYXRhLWtleS10ZXN0LWRhdGEta2V5LXRlc3Q=";

/// A fresh, empty PostgreSQL database for one test: its URL. Without `TEST_AUTHD_POSTGRES_URL`
/// (see `.ci/services`), `None` and a note, unless `TEST_AUTHD_REQUIRE_SERVICES` says CI wants them.
pub async fn postgres_db() -> Option<String> {
    let Ok(admin) = std::env::var("TEST_AUTHD_POSTGRES_URL") else {
        return super::unavailable("PostgreSQL", "set TEST_AUTHD_POSTGRES_URL: eval \"$(.ci/services start)\"");
    };
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("test postgres answers");
    tokio::spawn(conn);
    let name = format!("authd_{}", uuid::Uuid::now_v7().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    Some(url.to_string())
}

/// A node's config.toml for the database at `url`, with the data key every node shares.
pub fn postgres_config(url: &str) -> String {
    format!("[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n\n[security]\ndata_key = \"{TEST_DATA_KEY}\"\n")
}

/// Points a configuration at a PostgreSQL database.
pub fn use_postgres(cfg: &mut Config, url: &str) {
    cfg.storage.backend = StorageBackend::Postgres;
    cfg.storage.url = Some(Secret(url.to_owned()));
    cfg.security.data_key = Some(Secret(TEST_DATA_KEY.to_owned()));
}

/// A throwaway PostgreSQL cluster on a free loopback port, run by the `postgres` user when the
/// tests run as root (PostgreSQL refuses root). Stopped and removed on drop.
pub struct PrivatePostgres {
    bin: PathBuf,
    /// Its files; with TLS, `ca.pem` here is the CA that signed its certificate.
    pub dir: PathBuf,
    port: u16,
    tls: bool,
}

impl PrivatePostgres {
    /// `None` where the tests have no PostgreSQL (no `TEST_AUTHD_POSTGRES_URL`).
    pub fn create() -> Option<Self> {
        Self::create_with(false)
    }

    /// With `tls`, the server takes TLS only, with a certificate for 127.0.0.1 signed by a CA
    /// made for the test (`ca.pem` in its directory).
    pub fn create_with(tls: bool) -> Option<Self> {
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
        let port = super::free_port();
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

    pub fn start(&self) {
        let ssl = if self.tls { " -c ssl=on" } else { "" };
        let opts =
            format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off{ssl}", self.port, self.dir.display());
        let log = self.dir.join("server.log");
        self.pg_ctl(&["-w", "-l", log.to_str().unwrap(), "-o", &opts, "start"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    pub fn url(&self) -> String {
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
