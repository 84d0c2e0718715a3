//! Loopback ports for the servers around authd.

use std::net::SocketAddr;

/// A port that was free on 127.0.0.1 a moment ago, for a server that must be told its port
/// before it starts (PostgreSQL, Redis, chromedriver, authd where a provider needs its callback).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
