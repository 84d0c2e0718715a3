//! The store as services use it. A write transaction carries the request it serves (who, from
//! where, when), so that rules record each fact where it happens: `tx.audit(..)` writes an audit
//! event and queues it for the webhook endpoints that want it, `tx.revoke_session(..)` ends a
//! session and remembers its revocation, which reaches the in-memory check once the transaction
//! commits. Business rules, so they live with the services, and every backend gets them alike.

use std::{
    ops::{Deref, DerefMut},
    sync::Arc,
    time::Duration,
};

use uuid::Uuid;

use super::audit::AuditContext;
use crate::{
    cache::{ClientCache, RevocationCache, UserCache},
    model::{
        AuditEvent, Client, OutboxMessage, Revocation, RevocationKind, UnixTime, User, WebhookEndpoint, now, now_millis,
    },
    store::{ChangeFeed, ReadTx, Store, StoreError, WriteTx},
};

/// The store, with the webhook endpoints from the config file and caches of users and clients.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Db {
    store: Store,
    webhooks: Arc<Vec<WebhookEndpoint>>,
    users: Arc<UserCache>,
    clients: Arc<ClientCache>,
    revocations: Arc<RevocationCache>,
    /// How long a revocation is kept: until every access token it covers has expired.
    revocation_ttl: u64,
    /// The request the next transaction serves (set per call by the service; none for the
    /// server's own work).
    request: Option<AuditContext>,
}

impl Db {
    pub fn new(
        store: Store,
        webhooks: Vec<WebhookEndpoint>,
        revocations: Arc<RevocationCache>,
        revocation_ttl: u64,
    ) -> Self {
        Self {
            store,
            webhooks: Arc::new(webhooks),
            users: Arc::default(),
            clients: Arc::default(),
            revocations,
            revocation_ttl,
            request: None,
        }
    }

    /// This handle, for transactions that serve `request`.
    pub fn serving(&self, request: AuditContext) -> Self {
        Self { request: Some(request), ..self.clone() }
    }

    /// Drops cached users and clients past their time.
    pub fn sweep(&self) {
        self.users.sweep();
        self.clients.sweep();
    }

    /// A user if cached: no storage, so no blocking thread needed.
    pub fn cached_user(&self, id: Uuid) -> Option<Arc<User>> {
        self.users.get(id)
    }

    /// Reads a user from the store and caches it, unless a user write raced the read.
    pub fn load_user(&self, id: Uuid) -> Result<Option<Arc<User>>, StoreError> {
        self.users.load(id, || self.store.read(|tx| tx.user(id)))
    }

    /// Forgets a user another node changed, or (`None`) every user.
    pub fn forget_users(&self, id: Option<Uuid>) {
        self.users.forget(id);
    }

    /// A client if cached: no storage, so no blocking thread needed.
    pub fn cached_client(&self, id: Uuid) -> Option<Arc<Client>> {
        self.clients.get(id)
    }

    /// Reads a client from the store and caches it, unless a client write raced the read.
    pub fn load_client(&self, id: Uuid) -> Result<Option<Arc<Client>>, StoreError> {
        self.clients.load(id, || self.store.read(|tx| tx.client(id)))
    }

    /// Forgets a client another node changed, or (`None`) every client.
    pub fn forget_clients(&self, id: Option<Uuid>) {
        self.clients.forget(id);
    }

    /// A consistent copy of the database in the new file `to`.
    pub fn snapshot(&self, to: &std::path::Path) -> Result<crate::store::Snapshot, StoreError> {
        self.store.snapshot(to)
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

    /// One write transaction: all of `f` commits, or none of it. What it revoked takes effect
    /// for the per-request check once it has committed.
    ///
    /// A per-user cut-off refuses tokens minted up to and including its millisecond; waiting
    /// for the next millisecond before returning means every token minted after the caller
    /// hears back is minted after the cut-off.
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        let mut effects = Effects::default();
        let request = self.request.clone().unwrap_or_default();
        let out = self.store.write(|inner| {
            f(&mut Tx {
                inner,
                webhooks: &self.webhooks,
                request: &request,
                revocation_ttl: self.revocation_ttl,
                effects: &mut effects,
            })
        });
        // Even after a failure: a commit can land and still be reported lost (PostgreSQL's
        // connection dropping), and this node ignores its own change notices. A rolled-back
        // write only costs a read.
        for id in effects.users_written {
            self.forget_users(Some(id));
        }
        for id in effects.clients_written {
            self.forget_clients(Some(id));
        }
        if out.is_ok() {
            for r in &effects.revoked {
                self.revocations.apply(r);
            }
            if effects.revoked.iter().any(|r| r.kind == RevocationKind::UserBefore) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        out
    }
}

/// What a transaction did that matters outside the store once it commits.
#[derive(Default)]
struct Effects {
    /// Users written, whose cached copies go.
    users_written: Vec<Uuid>,
    /// Clients written, likewise.
    clients_written: Vec<Uuid>,
    /// Revocations, for the in-memory check.
    revoked: Vec<Revocation>,
}

/// A write transaction: every store method, and the facts rules record in it (audit events,
/// revocations) with the request it serves.
pub(crate) struct Tx<'a> {
    inner: &'a mut dyn WriteTx,
    webhooks: &'a [WebhookEndpoint],
    request: &'a AuditContext,
    revocation_ttl: u64,
    effects: &'a mut Effects,
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

/// User and client writes go through here (inherent methods win over the store's), so that the
/// caches hear of each.
impl Tx<'_> {
    pub fn put_client(&mut self, client: &Client) -> Result<(), StoreError> {
        self.effects.clients_written.push(client.id);
        self.inner.put_client(client)
    }

    pub fn delete_client(&mut self, id: Uuid) -> Result<bool, StoreError> {
        self.effects.clients_written.push(id);
        self.inner.delete_client(id)
    }

    pub fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.effects.users_written.push(user.id);
        self.inner.insert_user(user)
    }

    pub fn update_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.effects.users_written.push(user.id);
        self.inner.update_user(user)
    }

    pub fn delete_user(&mut self, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        self.effects.users_written.push(id);
        self.inner.delete_user(id)
    }

    /// The time of the request, in seconds.
    pub fn now(&self) -> UnixTime {
        now()
    }

    /// Records that `event` happened to `subject` (and its session), as the request's actor.
    pub fn audit(
        &mut self,
        event: &str,
        subject: Option<Uuid>,
        session: Option<Uuid>,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let e = super::audit::event(self.request, event, true, subject, session, details);
        self.append_audit(&e)
    }

    /// Records that an attempt at `event` failed.
    pub fn audit_failure(
        &mut self,
        event: &str,
        subject: Option<Uuid>,
        session: Option<Uuid>,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let e = super::audit::event(self.request, event, false, subject, session, details);
        self.append_audit(&e)
    }

    /// Ends a session: it is deleted, and every access token of it is refused from the commit on.
    pub fn revoke_session(&mut self, sid: Uuid) -> Result<(), StoreError> {
        self.inner.delete_session(sid)?;
        self.remember(Revocation {
            kind: RevocationKind::Session,
            id: sid,
            since_ms: 0,
            min_gen: 0,
            expires_at: self.revocation_expiry(),
        })
    }

    /// Ends each of `sids`; returns how many.
    pub fn revoke_sessions(&mut self, sids: &[Uuid]) -> Result<usize, StoreError> {
        for sid in sids {
            self.revoke_session(*sid)?;
        }
        Ok(sids.len())
    }

    /// Refuses every access token of `user` minted until now.
    pub fn cut_off_user(&mut self, user: Uuid) -> Result<(), StoreError> {
        self.remember(Revocation {
            kind: RevocationKind::UserBefore,
            id: user,
            since_ms: now_millis(),
            min_gen: 0,
            expires_at: self.revocation_expiry(),
        })
    }

    /// Marks a change to what a principal (user or client) may do: its generation goes up and
    /// every token minted from an older one is refused, however late it was signed (a refresh
    /// racing a demotion read the old roles, so it carries the old generation). Every token
    /// minted until now is cut off too. The caller writes the principal's record.
    pub fn bump_authz(&mut self, id: Uuid, generation: &mut u64) -> Result<(), StoreError> {
        *generation += 1;
        self.remember(Revocation {
            kind: RevocationKind::UserBefore,
            id,
            since_ms: now_millis(),
            min_gen: *generation,
            expires_at: self.revocation_expiry(),
        })
    }

    /// Queues a message (mail, SMS, webhook) in the outbox: it goes out once this commits.
    pub fn emit(&mut self, m: &OutboxMessage) -> Result<(), StoreError> {
        self.inner.put_delivery(m)
    }

    fn revocation_expiry(&self) -> UnixTime {
        now() + self.revocation_ttl
    }

    fn remember(&mut self, r: Revocation) -> Result<(), StoreError> {
        self.inner.put_revocation(&r)?;
        self.effects.revoked.push(r);
        Ok(())
    }

    /// Records an audit event and, in the same transaction, queues it for every webhook
    /// endpoint that wants it.
    pub fn append_audit(&mut self, e: &AuditEvent) -> Result<(), StoreError> {
        self.inner.insert_audit(e)?;
        let stored = self.inner.stored_webhooks()?;
        for d in crate::messages::deliveries_for(e, self.webhooks, &stored) {
            self.inner.put_delivery(&d)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Client;

    #[test]
    fn a_write_that_fails_still_drops_the_cached_copies_it_touched() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_redb(&dir.path().join("data/authd.redb")).unwrap();
        let db = Db::new(store, Vec::new(), Arc::default(), 60);
        let client: Client = serde_json::from_value(serde_json::json!({
            "id": Uuid::now_v7(), "name": "shop", "roles": [], "secret_hash": [], "created_at": 1
        }))
        .unwrap();
        db.write(|tx| tx.put_client(&client)).unwrap();
        assert!(db.load_client(client.id).unwrap().is_some());
        assert!(db.cached_client(client.id).is_some());
        let failed: Result<(), StoreError> = db.write(|tx| {
            tx.put_client(&client)?;
            Err(StoreError::Duplicate("test"))
        });
        assert!(failed.is_err());
        assert!(db.cached_client(client.id).is_none());
    }
}
