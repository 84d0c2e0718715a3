//! Loopback ports for the servers around authd.

use std::net::SocketAddr;

/// A port that was free on 127.0.0.1 a moment ago, for a server that must be told its port
/// before it starts (PostgreSQL, Redis, chromedriver, authd where a provider needs its callback).
///
/// Handed out below the kernel's ephemeral range, each once per run: a port from that range,
/// closed to be handed on, could be taken meanwhile by any `bind(0)` or outgoing connection
/// of the suite (Traefik once found its port so taken).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    let below = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if below < FIRST + 1_000 {
        return std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    }
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..10_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (std::process::id() % 1_000 * 7 + n) % (below - FIRST);
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", u16::try_from(port).unwrap())) {
            return listener.local_addr().unwrap().port();
        }
    }
    panic!("no free port below {below}");
}

/// Serves a fake (a poem endpoint) on a port of its own until the test ends; its address. The
/// port is bound before this returns, so the fake is reachable at once.
pub async fn serve_fake<E>(endpoint: E) -> SocketAddr
where
    E: poem::IntoEndpoint + Send + 'static,
    E::Endpoint: 'static,
{
    use poem::listener::{Acceptor as _, Listener as _};
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    addr
}
