//! The HTTP connection loop, in place of poem's `Server`, which cannot time out request headers
//! nor count connections. Each connection is served by hyper with a header-read deadline
//! (slowloris), closed after `server.idle_timeout` without traffic or requests, and admitted only
//! under `server.max_connections` in total and `server.max_connections_per_ip` per peer address
//! (trusted proxies excepted: they carry many clients).

use std::{
    collections::HashMap,
    convert::Infallible,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use poem::{
    Endpoint, EndpointExt as _, Response,
    listener::{Acceptor, BoxAcceptor, BoxIo},
    web::{LocalAddr, RemoteAddr},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Timeouts and caps, from `[server]`.
#[derive(Clone)]
pub struct ConnectionPolicy {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Live connections, in total and per peer address.
struct Census {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place in the census, given back when it closes.
struct Admission {
    census: Arc<Census>,
    ip: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.census.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut map = self.census.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl Census {
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>, policy: &ConnectionPolicy) -> Option<Admission> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= policy.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let counted = ip.filter(|ip| !policy.trusted_proxies.iter().any(|n| n.contains(ip)));
        if let Some(ip) = counted {
            let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= policy.max_per_ip {
                drop(map);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            *n += 1;
        }
        Some(Admission { census: Arc::clone(self), ip: counted })
    }
}

/// A listening socket: poem's acceptor, and the same socket to ask the kernel whether a
/// connection waits in its queue.
pub struct Listener {
    acceptor: BoxAcceptor,
    queue: socket2::Socket,
}

impl Listener {
    pub fn new(acceptor: BoxAcceptor, queue: socket2::Socket) -> Self {
        Self { acceptor, queue }
    }
}

/// Whether a completed connection waits in `queue`, asked of the kernel itself: the runtime
/// learns of one only when its reactor next runs, which can be late on a busy machine.
fn waiting(queue: &socket2::Socket) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(queue, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })) {
            Err(rustix::io::Errno::INTR) => continue,
            answer => return answer.is_ok_and(|n| n > 0),
        }
    }
}

/// Serves `ep` on `listener` until `shutdown` resolves, then lets open connections finish for
/// up to `grace`.
pub async fn serve(
    listener: Listener,
    ep: impl Endpoint + 'static,
    policy: ConnectionPolicy,
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: Duration,
) {
    let Listener { mut acceptor, queue } = listener;
    let ep = Arc::new(ep.map_to_response().boxed());
    let census = Arc::new(Census { total: AtomicUsize::new(0), per_ip: Mutex::new(HashMap::new()) });
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    let mut stopping = false;
    let mut drained = 0usize;
    loop {
        let accepted = if stopping {
            // Connections the kernel already completed are served too; closing the socket
            // would reset them. Then close at the first moment none waits (or a flood keeps
            // coming, or accepting fails), with nothing in between: one completing later is
            // refused, and its client tries again or elsewhere.
            drained += 1;
            if drained > 1024 || !waiting(&queue) {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(500), acceptor.accept()).await {
                Ok(Ok(a)) => Ok(a),
                _ => break,
            }
        } else {
            tokio::select! {
                () = &mut shutdown => {
                    stopping = true;
                    continue;
                }
                a = acceptor.accept() => a,
            }
        };
        let (io, local, remote, scheme) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = remote.as_socket_addr().map(|a| a.ip().to_canonical());
        let Some(admission) = census.admit(ip, &policy) else {
            tracing::warn!(target: "authd::security", "auth_event=connection_refused ip={}", ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()));
            drop(io);
            continue;
        };
        let (ep, policy, stop) = (Arc::clone(&ep), policy.clone(), stop.clone());
        tokio::spawn(async move {
            connection(io, local, remote, scheme, ep, &policy, stop).await;
            drop(admission);
        });
    }
    // Close the listening socket now: a client that connects while requests in flight finish
    // is refused at once (and tries again or elsewhere), not left in the backlog to be reset.
    drop(queue);
    drop(acceptor);
    stop.cancel();
    let deadline = Instant::now() + grace;
    while census.total.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type Ep = Arc<poem::endpoint::BoxEndpoint<'static, Response>>;

async fn connection(
    io: BoxIo,
    local: LocalAddr,
    remote: RemoteAddr,
    scheme: poem::http::uri::Scheme,
    ep: Ep,
    policy: &ConnectionPolicy,
    stop: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = Watched { inner: io, activity: Arc::clone(&activity) };
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |req: poem::http::Request<hyper::body::Incoming>| {
            let (ep, local, remote, scheme) = (Arc::clone(&ep), local.clone(), remote.clone(), scheme.clone());
            let activity = Arc::clone(&activity);
            activity.in_flight.fetch_add(1, Ordering::AcqRel);
            activity.started.fetch_add(1, Ordering::AcqRel);
            async move {
                let resp = ep.get_response((req, local, remote, scheme).into()).await;
                activity.in_flight.fetch_sub(1, Ordering::AcqRel);
                activity.touch();
                Ok::<_, Infallible>(
                    hyper::Response::<http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>>::from(resp),
                )
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(policy.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let check = (policy.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut closing = false;
    let mut stopping: Option<Instant> = None;
    loop {
        let tick = if stopping.is_some() && !closing { Duration::from_millis(5) } else { check };
        tokio::select! {
            _ = conn.as_mut() => return,
            () = stop.cancelled(), if stopping.is_none() => stopping = Some(Instant::now()),
            () = tokio::time::sleep(tick) => {
                if let Some(since) = stopping {
                    // A connection accepted just before the stop has not shown its first request
                    // yet: closing it now would drop a request the client already sent.
                    let waited = since.elapsed() >= policy.header_timeout.min(Duration::from_secs(2));
                    if !closing && (activity.started.load(Ordering::Acquire) > 0 || waited) {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    continue;
                }
                if activity.idle_for() >= policy.idle_timeout && activity.in_flight.load(Ordering::Acquire) == 0 {
                    // Nothing in flight and nothing on the wire: hang up.
                    return;
                }
            }
        }
    }
}

/// When the connection last moved a byte, and how many requests it has in flight.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Requests begun on this connection, ever.
    started: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Release);
    }

    fn idle_for(&self) -> Duration {
        self.epoch.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Acquire)))
    }
}

/// The connection's IO, noting activity.
struct Watched {
    inner: BoxIo,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.activity.touch();
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
