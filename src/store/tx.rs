use redb::{ReadTransaction, ReadableMultimapTable as _, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::{
    StoreError,
    codec::{decode, encode},
    tables::*,
};
use crate::model::{
    AuditEvent, DeliveryState, RefreshRecord, Revocation, RevocationKind, Role, ServiceClient, Session,
    SigningKeyRecord, StoredWebhook, UnixTime, User, WebhookDelivery, WebhookEndpoint,
};

type R<T> = Result<T, StoreError>;

pub struct ReadTx {
    tx: ReadTransaction,
}

pub struct WriteTx {
    tx: WriteTransaction,
    webhooks: std::sync::Arc<Vec<WebhookEndpoint>>,
}

impl ReadTx {
    pub(super) fn new(tx: ReadTransaction) -> Self {
        Self { tx }
    }
}

impl WriteTx {
    pub(super) fn new(tx: WriteTransaction, webhooks: std::sync::Arc<Vec<WebhookEndpoint>>) -> Self {
        Self { tx, webhooks }
    }
    pub(super) fn commit(self) -> R<()> {
        Ok(self.tx.commit()?)
    }
    pub(super) fn abort(self) {
        // Dropping an uncommitted transaction rolls it back; an abort error changes nothing.
        let _ = self.tx.abort();
    }
}

/// Index key of one login name.
pub fn index_key(kind: char, value: &str) -> String {
    format!("{kind}:{value}")
}

fn user_index_keys(u: &User) -> Vec<(String, &'static str)> {
    let mut keys = Vec::new();
    if let Some(e) = &u.email {
        keys.push((index_key('e', e), "email"));
    }
    if let Some(p) = &u.phone {
        keys.push((index_key('p', p), "phone"));
    }
    if let Some(n) = &u.username {
        keys.push((index_key('u', n), "username"));
    }
    keys
}

fn revocation_key(r: &Revocation) -> String {
    let kind = match r.kind {
        RevocationKind::Session => 's',
        RevocationKind::UserBefore => 'u',
    };
    format!("{kind}:{}", r.id)
}

fn get<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: K::SelfType<'_>,
) -> R<Option<T>> {
    match table.get(key)? {
        Some(g) => Ok(Some(decode(g.value())?)),
        None => Ok(None),
    }
}

fn all<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
) -> R<Vec<T>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Reads available in both kinds of transaction.
macro_rules! reads {
    ($t:ty) => {
        impl $t {
            pub fn user(&self, id: Uuid) -> R<Option<User>> {
                get(&self.tx.open_table(USERS)?, id)
            }

            /// Looks a user up by an index key made with [`index_key`].
            pub fn user_by_index(&self, key: &str) -> R<Option<User>> {
                let id = self.tx.open_table(USER_INDEX)?.get(key)?.map(|g| g.value());
                match id {
                    Some(id) => self.user(id),
                    None => Ok(None),
                }
            }

            /// All users, oldest first (ids are UUIDv7).
            pub fn users(&self) -> R<Vec<User>> {
                all(&self.tx.open_table(USERS)?)
            }

            pub fn session(&self, id: Uuid) -> R<Option<Session>> {
                get(&self.tx.open_table(SESSIONS)?, id)
            }

            pub fn session_ids_of(&self, user: Uuid) -> R<Vec<Uuid>> {
                let table = self.tx.open_multimap_table(USER_SESSIONS)?;
                let mut ids = Vec::new();
                for v in table.get(user)? {
                    ids.push(v?.value());
                }
                Ok(ids)
            }

            pub fn sessions_of(&self, user: Uuid) -> R<Vec<Session>> {
                let sessions = self.tx.open_table(SESSIONS)?;
                let mut out = Vec::new();
                for id in self.session_ids_of(user)? {
                    if let Some(s) = get(&sessions, id)? {
                        out.push(s);
                    }
                }
                Ok(out)
            }

            pub fn refresh(&self, hash: &[u8]) -> R<Option<RefreshRecord>> {
                get(&self.tx.open_table(REFRESH_TOKENS)?, hash)
            }

            pub fn revocations(&self) -> R<Vec<Revocation>> {
                all(&self.tx.open_table(REVOCATIONS)?)
            }

            pub fn signing_keys(&self) -> R<Vec<SigningKeyRecord>> {
                all(&self.tx.open_table(SIGNING_KEYS)?)
            }

            pub fn roles(&self) -> R<Vec<Role>> {
                all(&self.tx.open_table(ROLES)?)
            }

            pub fn client(&self, id: Uuid) -> R<Option<ServiceClient>> {
                get(&self.tx.open_table(CLIENTS)?, id)
            }

            pub fn clients(&self) -> R<Vec<ServiceClient>> {
                all(&self.tx.open_table(CLIENTS)?)
            }

            pub fn stored_webhooks(&self) -> R<Vec<StoredWebhook>> {
                all(&self.tx.open_table(WEBHOOKS)?)
            }

            /// Pending deliveries due at `now_ms`, oldest first, at most `limit`.
            pub fn due_deliveries(&self, now_ms: u64, limit: usize) -> R<Vec<WebhookDelivery>> {
                let pending = self.tx.open_table(WEBHOOK_PENDING)?;
                let outbox = self.tx.open_table(WEBHOOK_OUTBOX)?;
                let mut out = Vec::new();
                for row in pending.iter()? {
                    let (id, next) = row?;
                    if next.value() <= now_ms
                        && let Some(d) = get::<Uuid, WebhookDelivery>(&outbox, id.value())?
                    {
                        out.push(d);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
                Ok(out)
            }

            pub fn deliveries(&self) -> R<Vec<WebhookDelivery>> {
                all(&self.tx.open_table(WEBHOOK_OUTBOX)?)
            }

            /// Audit events newest first, strictly older than `before` when given, that pass
            /// `keep`, at most `limit`.
            pub fn audit_events(
                &self,
                before: Option<Uuid>,
                limit: usize,
                keep: &dyn Fn(&AuditEvent) -> bool,
            ) -> R<Vec<AuditEvent>> {
                let table = self.tx.open_table(AUDIT)?;
                let mut out = Vec::new();
                if limit == 0 {
                    return Ok(out);
                }
                let rows = match before {
                    Some(b) => table.range(..b)?,
                    None => table.range::<Uuid>(..)?,
                };
                for row in rows.rev() {
                    let (_, v) = row?;
                    let e: AuditEvent = decode(v.value())?;
                    if keep(&e) {
                        out.push(e);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
                Ok(out)
            }
        }
    };
}

reads!(ReadTx);
reads!(WriteTx);

/// User lookups shared by both kinds of transaction, for code generic over them.
pub trait UserLookup {
    fn find_user(&self, id: Uuid) -> R<Option<User>>;
    fn find_user_by_index(&self, key: &str) -> R<Option<User>>;
}

macro_rules! lookup {
    ($t:ty) => {
        impl UserLookup for $t {
            fn find_user(&self, id: Uuid) -> R<Option<User>> {
                self.user(id)
            }
            fn find_user_by_index(&self, key: &str) -> R<Option<User>> {
                self.user_by_index(key)
            }
        }
    };
}

lookup!(ReadTx);
lookup!(WriteTx);

impl WriteTx {
    /// Adds a user; fails with `Duplicate` when any of its login names is taken.
    pub fn insert_user(&mut self, user: &User) -> R<()> {
        {
            let mut index = self.tx.open_table(USER_INDEX)?;
            for (key, field) in user_index_keys(user) {
                if index.get(key.as_str())?.is_some() {
                    return Err(StoreError::Duplicate(field));
                }
                index.insert(key.as_str(), user.id)?;
            }
        }
        self.tx.open_table(USERS)?.insert(user.id, encode(user)?.as_slice())?;
        Ok(())
    }

    /// Replaces a user, moving its index entries when login names changed.
    pub fn update_user(&mut self, user: &User) -> R<()> {
        let old = self.user(user.id)?;
        {
            let mut index = self.tx.open_table(USER_INDEX)?;
            if let Some(old) = &old {
                for (key, _) in user_index_keys(old) {
                    index.remove(key.as_str())?;
                }
            }
            for (key, field) in user_index_keys(user) {
                if index.get(key.as_str())?.is_some_and(|g| g.value() != user.id) {
                    return Err(StoreError::Duplicate(field));
                }
                index.insert(key.as_str(), user.id)?;
            }
        }
        self.tx.open_table(USERS)?.insert(user.id, encode(user)?.as_slice())?;
        Ok(())
    }

    /// Removes a user, its login names and its sessions; returns the removed session ids.
    pub fn delete_user(&mut self, id: Uuid) -> R<Vec<Uuid>> {
        let Some(user) = self.user(id)? else {
            return Ok(Vec::new());
        };
        {
            let mut index = self.tx.open_table(USER_INDEX)?;
            for (key, _) in user_index_keys(&user) {
                index.remove(key.as_str())?;
            }
        }
        let sids = self.session_ids_of(id)?;
        for sid in &sids {
            self.delete_session(*sid)?;
        }
        self.tx.open_table(USERS)?.remove(id)?;
        Ok(sids)
    }

    pub fn put_session(&mut self, s: &Session) -> R<()> {
        self.tx.open_table(SESSIONS)?.insert(s.id, encode(s)?.as_slice())?;
        self.tx.open_multimap_table(USER_SESSIONS)?.insert(s.user_id, s.id)?;
        Ok(())
    }

    /// Removes a session. Its refresh-token hashes stay until they expire: a lookup that finds
    /// no session treats them as unknown.
    pub fn delete_session(&mut self, id: Uuid) -> R<Option<Session>> {
        let removed: Option<Session> = match self.tx.open_table(SESSIONS)?.remove(id)? {
            Some(g) => Some(decode(g.value())?),
            None => None,
        };
        if let Some(s) = &removed {
            self.tx.open_multimap_table(USER_SESSIONS)?.remove(s.user_id, s.id)?;
        }
        Ok(removed)
    }

    pub fn put_refresh(&mut self, hash: &[u8], rec: &RefreshRecord) -> R<()> {
        self.tx.open_table(REFRESH_TOKENS)?.insert(hash, encode(rec)?.as_slice())?;
        Ok(())
    }

    pub fn put_revocation(&mut self, r: &Revocation) -> R<()> {
        self.tx.open_table(REVOCATIONS)?.insert(revocation_key(r).as_str(), encode(r)?.as_slice())?;
        Ok(())
    }

    pub fn put_signing_key(&mut self, k: &SigningKeyRecord) -> R<()> {
        self.tx.open_table(SIGNING_KEYS)?.insert(k.kid.as_str(), encode(k)?.as_slice())?;
        Ok(())
    }

    /// Records an audit event, and queues it for every webhook endpoint that wants it.
    pub fn append_audit(&mut self, e: &AuditEvent) -> R<()> {
        self.tx.open_table(AUDIT)?.insert(e.id, encode(e)?.as_slice())?;
        // Webhook troubles are not themselves sent as webhooks.
        let stored = self.stored_webhooks()?;
        let wanted: Vec<(Option<Uuid>, &WebhookEndpoint)> = if e.event.starts_with("webhook.") {
            Vec::new()
        } else {
            let from_config = self.webhooks.iter().map(|w| (None, w));
            let added = stored.iter().map(|s| (Some(s.id), &s.endpoint));
            from_config.chain(added).filter(|(_, w)| w.wants(&e.event)).collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.time_ms);
        let payload = serde_json::json!({
            "type": e.event,
            "timestamp": humantime::format_rfc3339_millis(time).to_string(),
            "data": e,
        })
        .to_string();
        let mut outbox = self.tx.open_table(WEBHOOK_OUTBOX)?;
        let mut pending = self.tx.open_table(WEBHOOK_PENDING)?;
        for (endpoint_id, w) in wanted {
            let d = WebhookDelivery {
                id: Uuid::now_v7(),
                url: w.url.clone(),
                endpoint_id,
                event: e.event.clone(),
                payload: payload.clone(),
                created_ms: e.time_ms,
                next_attempt_ms: e.time_ms,
                attempts: 0,
                state: DeliveryState::Pending,
                last_error: None,
            };
            outbox.insert(d.id, encode(&d)?.as_slice())?;
            pending.insert(d.id, d.next_attempt_ms)?;
        }
        Ok(())
    }

    pub fn put_client(&mut self, c: &ServiceClient) -> R<()> {
        self.tx.open_table(CLIENTS)?.insert(c.id, encode(c)?.as_slice())?;
        Ok(())
    }

    pub fn delete_client(&mut self, id: Uuid) -> R<bool> {
        Ok(self.tx.open_table(CLIENTS)?.remove(id)?.is_some())
    }

    /// Drops finished deliveries created before `before_ms`.
    pub fn prune_deliveries(&mut self, before_ms: u64) -> R<usize> {
        let mut removed = 0;
        self.tx.open_table(WEBHOOK_OUTBOX)?.retain(|_, v| {
            let keep = decode::<WebhookDelivery>(v)
                .is_ok_and(|d| d.state == DeliveryState::Pending || d.created_ms >= before_ms);
            removed += usize::from(!keep);
            keep
        })?;
        Ok(removed)
    }

    pub fn put_webhook(&mut self, w: &StoredWebhook) -> R<()> {
        self.tx.open_table(WEBHOOKS)?.insert(w.id, encode(w)?.as_slice())?;
        Ok(())
    }

    pub fn delete_webhook(&mut self, id: Uuid) -> R<bool> {
        Ok(self.tx.open_table(WEBHOOKS)?.remove(id)?.is_some())
    }

    pub fn put_delivery(&mut self, d: &WebhookDelivery) -> R<()> {
        self.tx.open_table(WEBHOOK_OUTBOX)?.insert(d.id, encode(d)?.as_slice())?;
        let mut pending = self.tx.open_table(WEBHOOK_PENDING)?;
        if d.state == DeliveryState::Pending {
            pending.insert(d.id, d.next_attempt_ms)?;
        } else {
            pending.remove(d.id)?;
        }
        Ok(())
    }

    /// Drops audit events older than `before_ms`; returns how many.
    pub fn prune_audit(&mut self, before_ms: u64) -> R<usize> {
        let mut t = self.tx.open_table(AUDIT)?;
        let mut removed = 0;
        t.retain(|_, v| {
            let keep = decode::<AuditEvent>(v).is_ok_and(|e| e.time_ms >= before_ms);
            removed += usize::from(!keep);
            keep
        })?;
        Ok(removed)
    }

    pub fn delete_role(&mut self, name: &str) -> R<()> {
        self.tx.open_table(ROLES)?.remove(name)?;
        Ok(())
    }

    pub fn put_role(&mut self, r: &Role) -> R<()> {
        self.tx.open_table(ROLES)?.insert(r.name.as_str(), encode(r)?.as_slice())?;
        Ok(())
    }

    /// Drops what can no longer matter: expired refresh hashes, revocations and sessions.
    /// Returns how many records went.
    pub fn prune(&mut self, now: UnixTime) -> R<usize> {
        let mut removed = 0;
        {
            let mut t = self.tx.open_table(REFRESH_TOKENS)?;
            t.retain(|_, v| {
                let keep = decode::<RefreshRecord>(v).is_ok_and(|r| r.expires_at > now);
                removed += usize::from(!keep);
                keep
            })?;
        }
        {
            let mut t = self.tx.open_table(REVOCATIONS)?;
            t.retain(|_, v| {
                let keep = decode::<Revocation>(v).is_ok_and(|r| r.expires_at > now);
                removed += usize::from(!keep);
                keep
            })?;
        }
        let stale: Vec<Uuid> = {
            let t = self.tx.open_table(SESSIONS)?;
            let mut ids = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                if let Ok(s) = decode::<Session>(v.value())
                    && s.expires_at.min(s.absolute_expires_at) <= now
                {
                    ids.push(k.value());
                }
            }
            ids
        };
        for id in stale {
            self.delete_session(id)?;
            removed += 1;
        }
        Ok(removed)
    }
}
