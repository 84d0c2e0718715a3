//! The real `authd` binary, the one way the tests start it: one-shot commands (the CLI), and
//! `authd serve` as a process of its own ([`Server`]).

use std::{
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};

/// `authd` in `dir`, on the database there, with argon2 at its cheapest and none of the
/// caller's own configuration or allocator settings; stdio piped.
pub fn authd(dir: &Path) -> Command {
    authd_from(Path::new(env!("CARGO_BIN_EXE_authd")), dir)
}

/// [`authd`] from another build of it: `program` (an earlier release, in the upgrade tests).
pub fn authd_from(program: &Path, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir)
        .env_remove("AUTHD_CONFIG")
        .env_remove("_RJEM_MALLOC_CONF")
        .env("AUTHD_STORAGE__PATH", dir.join("authd.redb"))
        .env("AUTHD_TOKENS__ISSUER", "http://authd.test")
        .env("AUTHD_PASSWORDS__ARGON2__MEMORY_KIB", "64")
        .env("AUTHD_PASSWORDS__ARGON2__ITERATIONS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// `authd` run as `uid` (switching needs root), in `dir`: from a copy there that `uid` may
/// execute, wherever the build directory is. Only the caller's `AUTHD_CONFIG` is dropped.
pub fn authd_as(uid: u32, dir: &Path) -> Command {
    let bin = dir.join("authd-bin");
    if !bin.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_authd"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid", &uid.to_string(), "--regid", &uid.to_string(), "--clear-groups"])
        .arg(&bin)
        .current_dir(dir)
        .env_remove("AUTHD_CONFIG");
    c
}

/// The binary itself, for a test that installs it somewhere (as a user would).
pub fn path() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_authd"))
}

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `authd args` in `dir` to the end, with `stdin` as its input.
pub async fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut child = authd(dir).args(args).spawn().expect("authd binary runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    let o = child.wait_with_output().await.unwrap();
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// Runs `authd args`, which must succeed; its output.
pub async fn ok(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = run(dir, args, stdin).await;
    assert!(o.ok, "authd {args:?} failed: {}", o.stderr);
    o.stdout
}

/// Runs `authd args`, which must fail and say `needle`.
pub async fn fails(dir: &Path, args: &[&str], needle: &str) {
    let o = run(dir, args, None).await;
    assert!(!o.ok, "authd {args:?} should fail");
    assert!(o.stderr.contains(needle), "authd {args:?}: stderr {:?} lacks {needle:?}", o.stderr);
}

/// POSTs `body` as JSON to `path` through `base` (a server, or a proxy before one).
async fn post_json(base: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap()
}

/// Registers `email` with the test password through `base`.
pub async fn register(base: &str, email: &str) {
    let r =
        post_json(base, "/v1/auth/register", serde_json::json!({"email": email, "password": super::PASSWORD})).await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED, "registering {email}");
}

/// Signs `email` in with the test password through `base`: the token response.
pub async fn login(base: &str, email: &str) -> Value {
    post_json(base, "/v1/auth/login", serde_json::json!({"login": email, "password": super::PASSWORD}))
        .await
        .json()
        .await
        .unwrap()
}

/// `authd serve` in `dir` on a free port, with rate limits off as in `TestApp` (limits have
/// tests of their own); arguments and settings may be added before [`Server::spawn`].
pub fn serve(dir: &Path) -> Command {
    serve_from(Path::new(env!("CARGO_BIN_EXE_authd")), dir)
}

/// [`serve`] from another build of authd: `program`.
pub fn serve_from(program: &Path, dir: &Path) -> Command {
    let mut c = authd_from(program, dir);
    c.arg("serve").env("AUTHD_SERVER__BIND", "127.0.0.1:0").env("AUTHD_RATE_LIMIT__ENABLED", "false");
    c
}

/// A running `authd serve`, in a process group of its own so that dropping it ends everything
/// it started (a shell, the server), even when a test fails half-way. Its log is kept.
pub struct Server {
    child: Child,
    group: Option<rustix::process::Pid>,
    /// Where it listens, as a URL prefix (`http://127.0.0.1:port`).
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// [`serve`] in `dir` with JSON logs and `env` added, once it answers.
    pub async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(serve(dir).args(["--log-format", "json"]).envs(env.iter().copied())).await
    }

    /// Runs `cmd`, which starts `authd serve` with its log (text or JSON) on stderr, perhaps
    /// through a shell. Returns once the server has logged its address and answers there;
    /// panics with the log if it exits first.
    pub async fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("authd starts");
        let group = child.id().and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = loop {
            let Some(line) = lines.next_line().await.unwrap() else {
                let status = child.wait().await.unwrap();
                panic!("authd exited ({status}) before it listened:\n{}", log.lock().unwrap().join("\n"));
            };
            let addr = listening_at(&line);
            log.lock().unwrap().push(line);
            if let Some(addr) = addr {
                break addr;
            }
        };
        // Keep reading: a server whose stderr pipe fills up stops at its next log line.
        let reader = tokio::spawn({
            let log = Arc::clone(&log);
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap().push(line);
                }
            }
        });
        let addr = if addr.ip().is_unspecified() { SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())) } else { addr };
        let server = Self { child, group, base: format!("http://{addr}"), log, reader: Some(reader) };
        server.until_it_answers().await;
        server
    }

    async fn until_it_answers(&self) {
        let health = format!("{}/healthz", self.base);
        for _ in 0..200 {
            if reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("authd logged its address but never answered:\n{}", self.log().join("\n"));
    }

    /// The server's process id (the group's leader: the server, or the shell that started it).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server runs")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Its log so far, a line each.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM to the group, as an operator would stop it; its exit status and whole log.
    pub async fn stop(mut self) -> (ExitStatus, Vec<String>) {
        self.signal(rustix::process::Signal::TERM);
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("authd stops within 30 s of SIGTERM")
            .unwrap();
        (status, self.rest_of_log().await)
    }

    /// Waits for it to end by itself (after [`Server::terminate`]); its exit status and log.
    pub async fn wait(mut self) -> (ExitStatus, Vec<String>) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("authd ends within 30 s")
            .unwrap();
        (status, self.rest_of_log().await)
    }

    /// SIGTERM to the group, without waiting for it to end.
    pub fn terminate(&self) {
        self.signal(rustix::process::Signal::TERM);
    }

    /// SIGKILL to the group, as a crash would end it; its whole log.
    pub async fn kill(mut self) -> Vec<String> {
        self.signal(rustix::process::Signal::KILL);
        self.child.wait().await.unwrap();
        self.rest_of_log().await
    }

    fn signal(&self, signal: rustix::process::Signal) {
        if let Some(group) = self.group {
            let _ = rustix::process::kill_process_group(group, signal);
        }
    }

    /// Everything logged until the pipe closed. The leader is gone: whatever it left behind
    /// in its group goes too, or the pipe would stay open.
    async fn rest_of_log(&mut self) -> Vec<String> {
        self.signal(rustix::process::Signal::KILL);
        if let Some(reader) = self.reader.take() {
            let _ = reader.await;
        }
        self.group = None;
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal(rustix::process::Signal::KILL);
    }
}

/// The address in authd's "authd listening" line, JSON or text.
fn listening_at(line: &str) -> Option<SocketAddr> {
    if !line.contains("authd listening") {
        return None;
    }
    let addr = match serde_json::from_str::<Value>(line) {
        Ok(v) => v["addr"].as_str()?.to_owned(),
        Err(_) => line.split("addr=").nth(1)?.split_whitespace().next()?.to_owned(),
    };
    addr.parse().ok()
}
