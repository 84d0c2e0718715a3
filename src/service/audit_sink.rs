//! The audit events that have no transaction of their own, written in batches off the request
//! path.

use std::time::Duration;

use tokio::sync::mpsc;

use super::db::Db;
use crate::{error::Result, model::AuditEvent};

/// Bounded queue to the batching writer.
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
}

impl AuditSink {
    pub(super) fn start(store: Db) -> Self {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(10_000);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = rx.recv().await {
                batch.push(first);
                tokio::time::sleep(Duration::from_millis(100)).await;
                while batch.len() < 1000 {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let events = std::mem::take(&mut batch);
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
        });
        Self { tx }
    }

    pub(super) fn push(&self, e: AuditEvent) {
        if self.tx.try_send(e).is_err() {
            tracing::warn!("audit queue full; an event was dropped");
        }
    }
}
