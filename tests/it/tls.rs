//! Built-in TLS with a self-signed certificate made by the test.

use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::{
    TlsConnector,
    rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName},
};

use crate::support::TestApp;

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
