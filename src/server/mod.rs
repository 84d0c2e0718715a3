//! Builds and runs the whole server: HTTP listener, admin socket, housekeeping.

mod connections;
mod tls_reload;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use poem::listener::AcceptorExt as _;
use tokio::net::UnixListener;

use crate::{
    admin_socket,
    config::{Config, StorageBackend},
    service::{AuthService, StartError},
    store::StoreError,
};

/// A server whose listeners are bound, ready to run.
pub struct Application {
    svc: Arc<AuthService>,
    acceptor: connections::Listener,
    local_addr: SocketAddr,
    /// The admin console's own listener (`admin.console_bind`).
    console: Option<(connections::Listener, SocketAddr)>,
    /// None with a shared database: the CLI goes to the database itself.
    admin: Option<UnixListener>,
    socket_path: PathBuf,
}

/// A port taken but not yet listening: nothing connects before the server can answer, and a
/// taken port fails the start before anything is written.
struct Reserved {
    socket: socket2::Socket,
    at: SocketAddr,
    key: &'static str,
    tls: Option<(tls_reload::Files, tls_reload::Pair, poem::listener::RustlsConfig, Duration)>,
}

/// Binds `at` (not listening yet) and loads the TLS pair when configured.
fn reserve(at: SocketAddr, tls: &crate::config::TlsConfig, key: &'static str) -> anyhow::Result<Reserved> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(at), socket2::Type::STREAM, None)
        .with_context(|| format!("cannot listen on {at} ({key})"))?;
    socket.set_reuse_address(true)?;
    socket.bind(&at.into()).with_context(|| format!("cannot listen on {at} ({key})"))?;
    let at = socket.local_addr()?.as_socket().context("listener has no address")?;
    let tls = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key_file)) => {
            let files = tls_reload::Files { cert: cert.clone(), key: key_file.clone() };
            let (pem, config) = files.load()?;
            // A pair that does not load stops the start here, not at the first connection.
            let _ = poem::listener::IntoTlsConfigStream::into_stream(files.load()?.1)
                .with_context(|| format!("cannot serve TLS on {at} ({key}, server.tls)"))?;
            Some((files, pem, config, tls.reload_check.0))
        }
        _ => None,
    };
    Ok(Reserved { socket, at, key, tls })
}

impl Reserved {
    /// Starts listening; the listener and the address.
    fn listen(self) -> anyhow::Result<(connections::Listener, SocketAddr)> {
        let Self { socket, at, key, tls } = self;
        socket.listen(1024).with_context(|| format!("cannot listen on {at} ({key})"))?;
        socket.set_nonblocking(true)?;
        let queue = socket.try_clone().with_context(|| format!("cannot listen on {at} ({key})"))?;
        let tcp = poem::listener::TcpAcceptor::from_std(socket.into())
            .with_context(|| format!("cannot listen on {at} ({key})"))?;
        let acceptor = match tls {
            Some((files, pem, config, every)) => {
                tcp.rustls(Box::pin(tls_reload::configs(files, pem, config, every))).boxed()
            }
            None => tcp.boxed(),
        };
        Ok((connections::Listener::new(acceptor, queue), at))
    }
}

impl Application {
    /// Opens the database and binds the HTTP port and the admin socket.
    pub async fn build(mut cfg: Config) -> anyhow::Result<Self> {
        let socket_path = cfg.admin_socket_path();
        let db = cfg.storage_description();
        let embedded = cfg.storage.backend == StorageBackend::Redb;
        // Everything that can fail without touching the disk comes first, so that a failed
        // start leaves no directory, key, database or socket behind.
        if embedded && let Err(why) = crate::store::data_dir::check(&cfg.storage.path) {
            anyhow::bail!("cannot open {db}: {why}");
        }
        let main = reserve(cfg.server.bind, &cfg.server.tls, "server.bind")?;
        let local_addr = main.at;
        let console = match cfg.admin.console_bind {
            Some(at) => Some(reserve(at, &cfg.server.tls, "admin.console_bind")?),
            None => None,
        };
        // Links and the issuer name the port the server got (server.bind may say 0).
        cfg.server.bind = local_addr;
        let svc = AuthService::open(cfg).await.map_err(|e| match e {
            StartError::Store(StoreError::Locked) => {
                anyhow::anyhow!("the database {db} is already in use by another authd process")
            }
            other => anyhow::anyhow!("cannot open {db}: {other}"),
        })?;
        svc.follow_changes();
        if embedded {
            remove_stale_copies(&svc.config().storage.path);
        }
        // We hold the database lock, so a socket left behind is stale.
        let admin = if embedded {
            Some(
                admin_socket::bind(&socket_path, &svc.config().admin.allowed_uids)
                    .with_context(|| format!("cannot create admin socket {} (admin.socket)", socket_path.display()))?,
            )
        } else {
            None
        };
        svc.set_bound_address(local_addr);
        // Only now does the port take connections: the database is open.
        let (acceptor, _) = main.listen()?;
        let console = console.map(Reserved::listen).transpose()?;
        Ok(Self { svc, acceptor, local_addr, console, admin, socket_path })
    }

    /// Where the console's own listener answers, when `admin.console_bind` is set.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console.as_ref().map(|(_, a)| *a)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn service(&self) -> Arc<AuthService> {
        Arc::clone(&self.svc)
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish, then closes the
    /// database before returning.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { svc, acceptor, local_addr, console, admin, socket_path } = self;
        let grace = svc.config().server.shutdown_grace.0;
        let owns_socket = admin.is_some();
        let admin_task = tokio::spawn({
            let svc = Arc::clone(&svc);
            async move {
                if let Some(admin) = admin {
                    admin_socket::serve(admin, svc).await;
                }
            }
        });
        let housekeeping = tokio::spawn(housekeeping(Arc::clone(&svc)));
        // SIGHUP would end the process by default: it re-reads the TLS files (tls_reload), and
        // is harmless without TLS.
        let tls_on = svc.config().server.tls.is_enabled();
        let hangups = tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                if !tls_on {
                    tracing::info!("SIGHUP: nothing to reload (no server.tls)");
                }
            }
        });
        let webhooks = tokio::spawn(webhook_worker(Arc::clone(&svc)));
        let cfg = svc.config();
        if !cfg.server.bind.ip().is_loopback() {
            if cfg.email.transport == crate::config::EmailTransport::Log {
                tracing::warn!("email.transport is `log`: mail is printed, never sent; set email.transport = \"smtp\"");
            }
            if cfg.sms.transport == crate::config::SmsTransport::Log {
                tracing::warn!("sms.transport is `log`: SMS are printed, never sent; set sms.transport = \"gateway\"");
            }
        }
        if let Some(why) = cfg.public_bind_without_url() {
            tracing::warn!("{why}");
        }
        if cfg.oauth.app_pkce == crate::config::AppPkce::Optional && !cfg.oauth.providers.is_empty() {
            tracing::warn!(
                "oauth.app_pkce is `optional`: a login started without code_challenge is exchanged without a verifier, open to login CSRF; update the applications and set it to \"required\""
            );
        }
        if svc.config().forward_auth.insecure_cookies {
            tracing::warn!("forward_auth.insecure_cookies is on: the shared session cookie lacks Secure; tests only");
        }
        for (i, by) in crate::service::shadowed_rules(&svc.config().forward_auth.rules) {
            tracing::warn!(
                "forward_auth.rules[{i}] can never match: forward_auth.rules[{by}] comes first and matches all it would"
            );
        }
        if svc.config().tokens.insecure_dev_cookies {
            tracing::warn!("tokens.insecure_dev_cookies is on: auth cookies lack Secure; never use this in production");
        }
        tracing::info!(addr = %local_addr, storage = %svc.config().storage_description(), "authd listening");
        let server = &svc.config().server;
        let policy = connections::ConnectionPolicy {
            header_timeout: server.header_timeout.0,
            idle_timeout: server.idle_timeout.0,
            max_connections: server.max_connections,
            max_per_ip: server.max_connections_per_ip,
            trusted_proxies: server.trusted_proxies.clone(),
        };
        // One shutdown for every listener.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let console_task = console.map(|(acceptor, at)| {
            tracing::info!(addr = %at, "admin console listening");
            let app = poem::EndpointExt::data(crate::api::app(Arc::clone(&svc)), crate::api::ConsoleListener);
            tokio::spawn(connections::serve(acceptor, app, policy.clone(), until(stopped.clone()), grace))
        });
        let main = connections::serve(acceptor, crate::api::app(Arc::clone(&svc)), policy, until(stopped), grace);
        tokio::pin!(main);
        tokio::select! {
            () = &mut main => {}
            () = shutdown => {
                // A second signal cuts the delay short: listened for before /readyz says
                // draining, so that one sent on seeing it is not lost.
                let delay = svc.config().server.shutdown_delay.0;
                let again = (!delay.is_zero()).then(shutdown_signal);
                svc.start_draining();
                if !delay.is_zero() {
                    tracing::info!(delay = %humantime::format_duration(delay), "draining: /readyz answers 503 before the port closes");
                }
                let ended = tokio::select! {
                    r = tokio::time::timeout(delay, &mut main) => r.is_ok(),
                    () = async { if let Some(a) = again { a.await } else { std::future::pending().await } } => false,
                };
                let _ = stop.send(true);
                if !ended {
                    main.await;
                }
            }
        }
        let _ = stop.send(true);
        if let Some(t) = console_task {
            let _ = t.await;
        }
        // Requests are done: write the audit events they queued before the process ends.
        svc.flush().await;
        admin_task.abort();
        housekeeping.abort();
        hangups.abort();
        webhooks.abort();
        let _ = webhooks.await;
        let _ = admin_task.await;
        let _ = housekeeping.await;
        if owns_socket {
            let _ = std::fs::remove_file(&socket_path);
        }
        // Wait for connection tasks to let go of the service, so the database file is closed
        // (and its lock released) when we return.
        let deadline = tokio::time::Instant::now() + grace;
        while Arc::strong_count(&svc) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(svc);
        tracing::info!("authd stopped");
        Ok(())
    }
}

/// Removes backup copies a crash left in the data directory (`.backup-*.redb`): we hold the
/// database, so no backup is being taken now, and each holds every secret.
fn remove_stale_copies(db: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(crate::store::data_dir::parent(db)) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".backup-") && name.ends_with(".redb") && std::fs::remove_file(e.path()).is_ok() {
            tracing::info!(file = %e.path().display(), "removed a backup copy left by an interrupted backup");
        }
    }
}

/// Sends due webhook deliveries twice a second, never blocking a request.
async fn webhook_worker(svc: Arc<AuthService>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Err(e) = svc.outbox.deliver_due().await {
            tracing::warn!(error = %e, "webhook delivery round failed");
        }
    }
}

/// Drops expired cache entries every five seconds, so that memory goes back after a burst
/// even when no request comes; and expired sessions, refresh-token hashes and revocations
/// every ten minutes.
async fn housekeeping(svc: Arc<AuthService>) {
    let mut sweep = tokio::time::interval(Duration::from_secs(5));
    let mut prune = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                svc.sweep_caches();
                continue;
            }
            _ = prune.tick() => {}
        }
        if let Err(e) = svc.audit.prune().await {
            tracing::warn!(error = %e, "pruning the audit log failed");
        }
        match svc.prune().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "pruned expired records"),
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
    }
}

/// The OpenAPI document of the HTTP API, as `authd openapi` prints it.
pub fn openapi_document() -> String {
    crate::api::document_from_code()
}

/// Resolves on SIGINT or SIGTERM. The handlers are taken when this is called, not when it is
/// first polled: a signal sent the moment the server answers must not meet the default action,
/// which ends the process with no drain.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested");
    }
}
