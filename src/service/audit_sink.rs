//! The audit events that have no transaction of their own, written in batches off the request
//! path.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::db::Db;
use crate::{error::Result, model::AuditEvent};

// Nearly every item is an event: boxing it would cost an allocation each to save a few flushes' bytes.
#[allow(clippy::large_enum_variant)]
enum Queued {
    Event(AuditEvent),
    /// Answered once every event queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Bounded queue to the batching writer.
pub struct AuditSink {
    tx: mpsc::Sender<Queued>,
}

impl AuditSink {
    pub(super) fn start(store: Db) -> Self {
        let (tx, mut rx) = mpsc::channel::<Queued>(10_000);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut waiting = Vec::new();
            while let Some(first) = rx.recv().await {
                match first {
                    Queued::Event(e) => {
                        batch.push(e);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Queued::Flush(done) => waiting.push(done),
                }
                while batch.len() < 1000 {
                    match rx.try_recv() {
                        Ok(Queued::Event(e)) => batch.push(e),
                        Ok(Queued::Flush(done)) => waiting.push(done),
                        Err(_) => break,
                    }
                }
                let events = std::mem::take(&mut batch);
                if !events.is_empty() {
                    let store = store.clone();
                    let written = tokio::task::spawn_blocking(move || {
                        store.write(|tx| -> Result<()> {
                            for e in &events {
                                tx.append_audit(e)?;
                            }
                            Ok(())
                        })
                    })
                    .await;
                    if !matches!(written, Ok(Ok(()))) {
                        tracing::warn!("could not write a batch of audit events");
                    }
                }
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self { tx }
    }

    pub(super) fn push(&self, e: AuditEvent) {
        if self.tx.try_send(Queued::Event(e)).is_err() {
            tracing::warn!("audit queue full; an event was dropped");
        }
    }

    /// Returns once every event pushed before this call is written (or could not be).
    pub(super) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Queued::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}
