//! A renewed certificate is served with no restart: the files are read again on SIGHUP, and
//! compared with what is served every `server.tls.reload_check`.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _, stream};
use poem::listener::{RustlsCertificate, RustlsConfig};

/// The certificate and key files' bytes, as last read.
pub(super) type Pair = (Vec<u8>, Vec<u8>);

#[derive(Clone)]
pub(super) struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Files {
    /// Both files' bytes, and the config they make.
    pub fn load(&self) -> anyhow::Result<(Pair, RustlsConfig)> {
        let cert = std::fs::read(&self.cert)
            .with_context(|| format!("cannot read {} (server.tls.cert)", self.cert.display()))?;
        let key =
            std::fs::read(&self.key).with_context(|| format!("cannot read {} (server.tls.key)", self.key.display()))?;
        check(&cert, &key)?;
        let config = RustlsConfig::new().fallback(RustlsCertificate::new().cert(cert.clone()).key(key.clone()));
        Ok(((cert, key), config))
    }
}

/// A certificate chain and the private key that belongs to it; a pair caught half-replaced
/// fails here.
fn check(cert: &[u8], key: &[u8]) -> anyhow::Result<()> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("server.tls.cert is not PEM: {e}"))?;
    anyhow::ensure!(!certs.is_empty(), "server.tls.cert holds no certificate");
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| anyhow::anyhow!("server.tls.key holds no private key: {e}"))?;
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| anyhow::anyhow!("server.tls.key is not a key rustls can use: {e}"))?;
    rustls::sign::CertifiedKey::new(certs, signer)
        .keys_match()
        .map_err(|e| anyhow::anyhow!("server.tls.key does not belong to server.tls.cert: {e}"))
}

/// The first config, then each pair that differs from the one before, read on SIGHUP or when
/// a check finds the files changed. The listener keeps serving the last pair that loaded.
pub(super) fn configs(
    files: Files,
    served: Pair,
    first: RustlsConfig,
    every: Duration,
) -> impl Stream<Item = RustlsConfig> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut served = served;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = (!every.is_zero()).then(|| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
        loop {
            let asked = tokio::select! {
                () = hangup(&mut hup) => true,
                () = next_tick(&mut tick) => false,
                () = tx.closed() => return,
            };
            match files.load() {
                Ok((pair, config)) if asked || pair != served => {
                    tracing::info!(cert = %files.cert.display(), "reloading the TLS certificate and key");
                    served = pair;
                    if tx.send(config).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the TLS files cannot be read; the served pair stays")
                }
            }
        }
    });
    stream::once(async move { first })
        .chain(stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }))
}

async fn hangup(hup: &mut Option<tokio::signal::unix::Signal>) {
    match hup {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
