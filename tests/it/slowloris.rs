//! Half-open connections: headers that never finish, connections that say nothing, and one
//! address holding more connections than its share.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use authd::config::HumanDuration;
use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
};

use crate::support::TestApp;

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// Waits up to `within` for the server to close the connection; returns how long it took.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            // A response (e.g. 408) may come first; the close follows.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_never_finish_are_cut_off() {
    let app = TestApp::spawn_with(|c| {
        c.server.header_timeout = HumanDuration::secs(1);
        c.server.idle_timeout = HumanDuration::secs(60);
    })
    .await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: authd\r\nX-Slow: ").await.unwrap();
        conns.push(s);
    }
    // Dribbling a byte now and then does not keep a head alive.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for s in &mut conns {
            let _ = s.write_all(b"a").await;
        }
    }
    for s in &mut conns {
        let took = closed_within(s, Duration::from_secs(5)).await;
        assert!(took.is_some(), "a half-sent request was still open after 5 s");
    }
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed() {
    let app = TestApp::spawn_with(|c| {
        c.server.header_timeout = HumanDuration::secs(30);
        c.server.idle_timeout = HumanDuration::secs(1);
    })
    .await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(4)).await.is_some(), "a silent connection stayed open");
    // A finished request on a keep-alive connection: closed once idle too.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: authd\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, Duration::from_secs(4)).await.is_some(), "an idle keep-alive stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    let app = TestApp::spawn_with(|c| {
        c.server.header_timeout = HumanDuration::secs(30);
        c.server.max_connections_per_ip = 5;
        c.server.max_connections = 8;
    })
    .await;
    let mut hogs = Vec::new();
    for _ in 0..5 {
        let mut s = connect_from("127.0.0.11", app.addr).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        hogs.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The sixth from the same address is turned away at once…
    let mut sixth = connect_from("127.0.0.11", app.addr).await;
    assert!(closed_within(&mut sixth, Duration::from_secs(2)).await.is_some(), "over the per-address cap");
    // …while others are still served.
    let other = crate::support::client_from("127.0.0.12");
    assert_eq!(other.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    // The total cap holds too: 5 + 3 fill it, the next is refused.
    let mut more = Vec::new();
    for i in 0..3 {
        more.push(connect_from(&format!("127.0.0.{}", 20 + i), app.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ninth = connect_from("127.0.0.30", app.addr).await;
    assert!(closed_within(&mut ninth, Duration::from_secs(2)).await.is_some(), "over the total cap");
    // Letting go frees the places.
    drop(hogs);
    drop(more);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(other.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
}
