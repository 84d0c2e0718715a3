//! The store as services use it. A write transaction here also queues each audit event for the
//! webhook endpoints that want it: a business rule, so it lives with the services, and every
//! backend gets it alike.

use std::{
    ops::{Deref, DerefMut},
    sync::Arc,
};

use crate::{
    model::{AuditEvent, WebhookEndpoint},
    store::{ChangeFeed, ReadTx, Store, StoreError, WriteTx},
};

/// The store, with the webhook endpoints from the config file. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Db {
    store: Store,
    webhooks: Arc<Vec<WebhookEndpoint>>,
}

impl Db {
    pub fn new(store: Store, webhooks: Vec<WebhookEndpoint>) -> Self {
        Self { store, webhooks: Arc::new(webhooks) }
    }

    /// Changes other nodes commit, when the database is shared.
    pub fn changes(&self) -> Option<ChangeFeed> {
        self.store.changes()
    }

    /// Reports the size of each group-commit batch.
    pub fn observe_commit_batches(&self, f: impl Fn(usize) + Send + Sync + 'static) {
        self.store.observe_commit_batches(f);
    }

    pub fn read<T, E: From<StoreError>>(&self, f: impl FnOnce(&dyn ReadTx) -> Result<T, E>) -> Result<T, E> {
        self.store.read(f)
    }

    /// One write transaction: all of `f` commits, or none of it.
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        self.store.write(|inner| f(&mut Tx { inner, webhooks: &self.webhooks }))
    }
}

/// A write transaction: every store method, and [`Tx::append_audit`].
pub(crate) struct Tx<'a> {
    inner: &'a mut dyn WriteTx,
    webhooks: &'a [WebhookEndpoint],
}

impl<'a> Deref for Tx<'a> {
    type Target = dyn WriteTx + 'a;

    fn deref(&self) -> &Self::Target {
        self.inner
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.inner
    }
}

impl Tx<'_> {
    /// Records an audit event and, in the same transaction, queues it for every webhook
    /// endpoint that wants it.
    pub fn append_audit(&mut self, e: &AuditEvent) -> Result<(), StoreError> {
        self.inner.insert_audit(e)?;
        let stored = self.inner.stored_webhooks()?;
        for d in super::webhooks::deliveries_for(e, self.webhooks, &stored) {
            self.inner.put_delivery(&d)?;
        }
        Ok(())
    }
}
