//! Built-in TLS with a self-signed certificate made by the test.

use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::{
    TlsConnector,
    rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName},
};

use crate::support::{TestApp, binary};

#[tokio::test]
async fn serves_https_with_hsts_when_given_a_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = crate::support::private_dir();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let app = TestApp::spawn_with(|c| {
        c.server.tls.cert = Some(cert_path.clone());
        c.server.tls.key = Some(key_path.clone());
    })
    .await;

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the server's certificate");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("strict-transport-security: max-age=31536000; includesubdomains"), "{text}");

    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::get(app.url("/healthz")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[test]
fn half_a_tls_configuration_is_refused() {
    let mut cfg = authd::config::Config::default();
    cfg.server.tls.cert = Some("/nonexistent/cert.pem".into());
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("server.tls"), "{err}");
    cfg.server.tls.key = Some("/nonexistent/key.pem".into());
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("server.tls.cert") && err.contains("not a readable file"), "{err}");
}

/// Which certificate the server at `port` presents now, trusting any of `roots`; `None` while
/// it does not answer.
async fn presented(port: u16, roots: &[&rcgen::CertifiedKey<rcgen::KeyPair>]) -> Option<Vec<u8>> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.cert.der().clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let tls =
        TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").unwrap(), tcp).await.ok()?;
    Some(tls.get_ref().1.peer_certificates()?.first()?.to_vec())
}

/// Writes `c` as the certificate pair in `dir`, each file replaced whole (as certbot does).
fn install(dir: &std::path::Path, c: &rcgen::CertifiedKey<rcgen::KeyPair>) {
    for (name, text) in [("key.pem", c.signing_key.serialize_pem()), ("cert.pem", c.cert.pem())] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

async fn until_served(
    port: u16,
    roots: &[&rcgen::CertifiedKey<rcgen::KeyPair>],
    want: &rcgen::CertifiedKey<rcgen::KeyPair>,
    secs: u64,
) -> bool {
    for _ in 0..secs * 10 {
        if presented(port, roots).await.as_deref() == Some(want.cert.der().as_ref()) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let names = vec!["localhost".to_string()];
    let [a, b, c, d] = std::array::from_fn(|_| rcgen::generate_simple_self_signed(names.clone()).unwrap());
    let all = [&a, &b, &c, &d];
    let dir = crate::support::private_dir();
    install(dir.path(), &a);
    let start = |check: &str| {
        let port = crate::support::free_port();
        let mut cmd = binary::serve(dir.path());
        cmd.env("AUTHD_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("AUTHD_SERVER__TLS__CERT", dir.path().join("cert.pem"))
            .env("AUTHD_SERVER__TLS__KEY", dir.path().join("key.pem"))
            .env("AUTHD_SERVER__TLS__RELOAD_CHECK", check)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        (cmd.spawn().unwrap(), port)
    };

    // Checked every 200 ms: a swapped pair is served soon after, by the same process.
    let (mut server, port) = start("200ms");
    assert!(until_served(port, &all, &a, 20).await, "the first certificate is served");
    install(dir.path(), &b);
    assert!(until_served(port, &all, &b, 5).await, "the renewed certificate is served");
    // A broken pair is refused and the served one stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(presented(port, &all).await.as_deref() == Some(b.cert.der().as_ref()), "the served pair stays");
    assert!(server.try_wait().unwrap().is_none(), "still running");
    server.kill().await.unwrap();

    // Checked on SIGHUP only: nothing changes until the signal, then the new pair is served.
    install(dir.path(), &c);
    let (mut server, port) = start("0s");
    assert!(until_served(port, &all, &c, 20).await);
    install(dir.path(), &d);
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    assert!(presented(port, &all).await.as_deref() == Some(c.cert.der().as_ref()), "no reload without SIGHUP");
    let pid = rustix::process::Pid::from_raw(server.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    assert!(until_served(port, &all, &d, 5).await, "SIGHUP re-reads the pair");
    assert!(server.try_wait().unwrap().is_none(), "SIGHUP does not end the server");
    server.kill().await.unwrap();
}
