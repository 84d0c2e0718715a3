//! A Redis server of the test's own, on a free port, that the test may stop and start again.

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};

pub struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// `None` where `redis-server` is not installed.
    pub async fn start() -> Option<Self> {
        let found = std::process::Command::new("redis-server").arg("--version").output().is_ok();
        if !found {
            return super::unavailable("Redis", "install redis-server (apt-get install redis-server)");
        }
        let port = super::free_port();
        let mut r = Self { port, child: None };
        r.up().await;
        Some(r)
    }

    /// Starts it (again) on its port, without persistence; returns once it accepts connections.
    pub async fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not listen");
    }

    /// Kills it; nothing it held survives.
    pub async fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Points a configuration's shared fast state at this server.
    pub fn configure(&self, cfg: &mut authd::config::Config) {
        cfg.cache.backend = authd::config::CacheBackend::Redis;
        cfg.cache.url = Some(authd::config::Secret(self.url()));
    }
}
