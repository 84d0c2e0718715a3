//! The store as services use it. A write transaction here also queues each audit event for the
//! webhook endpoints that want it: a business rule, so it lives with the services, and every
//! backend gets it alike.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use uuid::Uuid;

use crate::{
    model::{AuditEvent, User, WebhookEndpoint},
    store::{ChangeFeed, ReadTx, Store, StoreError, WriteTx},
};

/// The store, with the webhook endpoints from the config file and a cache of users. Cheap to
/// clone.
#[derive(Clone)]
pub(crate) struct Db {
    store: Store,
    webhooks: Arc<Vec<WebhookEndpoint>>,
    users: Arc<UserCache>,
}

/// Users as last read, for reads that need no transaction (`GET /v1/me`). Every write of a user
/// through [`Tx`] drops its entry once committed, and so does another node's (via the change
/// feed). A read that raced a write does not store what it read.
struct UserCache {
    users: moka::sync::Cache<Uuid, Arc<User>>,
    /// Bumped after every committed user write, before its entry is dropped.
    writes: AtomicU64,
}

impl Db {
    pub fn new(store: Store, webhooks: Vec<WebhookEndpoint>) -> Self {
        let users = UserCache {
            users: moka::sync::Cache::builder()
                .max_capacity(100_000)
                // A bound on staleness should a change notice from another node ever be lost.
                .time_to_live(Duration::from_secs(60))
                .build(),
            writes: AtomicU64::new(0),
        };
        Self { store, webhooks: Arc::new(webhooks), users: Arc::new(users) }
    }

    /// Drops cached users past their time.
    pub fn sweep(&self) {
        self.users.users.run_pending_tasks();
    }

    /// A user if cached: no storage, so no blocking thread needed.
    pub fn cached_user(&self, id: Uuid) -> Option<Arc<User>> {
        self.users.users.get(&id)
    }

    /// Reads a user from the store and caches it, unless a user write raced the read.
    pub fn load_user(&self, id: Uuid) -> Result<Option<Arc<User>>, StoreError> {
        let before = self.users.writes.load(Ordering::Acquire);
        let Some(user) = self.store.read(|tx| tx.user(id))? else {
            return Ok(None);
        };
        let user = Arc::new(user);
        if self.users.writes.load(Ordering::Acquire) == before {
            self.users.users.insert(id, Arc::clone(&user));
        }
        Ok(Some(user))
    }

    /// Forgets a user another node changed, or (`None`) every user.
    pub fn forget_users(&self, id: Option<Uuid>) {
        self.users.writes.fetch_add(1, Ordering::AcqRel);
        match id {
            Some(id) => self.users.users.invalidate(&id),
            None => self.users.users.invalidate_all(),
        }
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
        let mut users_written = Vec::new();
        let out =
            self.store.write(|inner| f(&mut Tx { inner, webhooks: &self.webhooks, users_written: &mut users_written }));
        if out.is_ok() {
            for id in users_written {
                self.forget_users(Some(id));
            }
        }
        out
    }
}

/// A write transaction: every store method, and [`Tx::append_audit`].
pub(crate) struct Tx<'a> {
    inner: &'a mut dyn WriteTx,
    webhooks: &'a [WebhookEndpoint],
    /// Users this transaction wrote, whose cached copies go once it commits.
    users_written: &'a mut Vec<Uuid>,
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

/// User writes go through here (inherent methods win over the store's), so that the cache
/// hears of each.
impl Tx<'_> {
    pub fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.users_written.push(user.id);
        self.inner.insert_user(user)
    }

    pub fn update_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.users_written.push(user.id);
        self.inner.update_user(user)
    }

    pub fn delete_user(&mut self, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        self.users_written.push(id);
        self.inner.delete_user(id)
    }

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
