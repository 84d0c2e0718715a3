//! The embedded backend: one redb file. The only code that knows redb.

mod audit;
mod backup;
mod clients;
mod codec;
mod group_commit;
mod identities;
mod keys;
mod one_time;
mod passkeys;
mod revocations;
mod roles;
mod sessions;
mod tables;
mod users;
mod webhooks;

use std::{path::Path, sync::Arc};

use redb::{Database, ReadTransaction, ReadableDatabase as _, ReadableTable, WriteTransaction};

use super::{
    Snapshot, StoreError, data_dir,
    ports::{Backend, BatchObserver, R, ReadTx, Transaction},
};
use codec::decode;
use group_commit::{GroupCommit, Slot};
pub use tables::SCHEMA_VERSION;
use tables::*;

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Backend(format!("redb: {e}")) }
        }
    )*};
}
from_redb!(redb::Error, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => StoreError::Locked,
            other => StoreError::Backend(format!("redb: {other}")),
        }
    }
}

pub struct RedbBackend {
    db: Arc<Database>,
    group: Arc<GroupCommit>,
}

/// What a file holds, for a restore's checks.
pub fn describe(path: &Path) -> R<Snapshot> {
    backup::describe(path)
}

/// The schema version of a file (read-only; 0 when there is none yet) and what opening it in this
/// build would add.
pub fn plan(path: &Path) -> R<(u64, Vec<(u64, String)>)> {
    const UPGRADES: [(u64, &str); 3] = [
        (2, "index the audit log by subject"),
        (3, "index users by status and role, and audit events by name"),
        (4, "count sign-ins and failures per minute, from the audit log"),
    ];
    let version = if path.exists() {
        let db = redb::ReadOnlyDatabase::open(path)?;
        let read = db.begin_read()?;
        match read.open_table(META) {
            Ok(t) => t.get("schema_version")?.map_or(0, |g| g.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(e.into()),
        }
    } else {
        0
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew(version));
    }
    let pending = match version {
        0 => vec![(SCHEMA_VERSION, "create the database".to_owned())],
        v => UPGRADES.iter().filter(|(n, _)| *n > v).map(|(n, what)| (*n, (*what).to_owned())).collect(),
    };
    Ok((version, pending))
}

pub fn count(path: &Path) -> R<Snapshot> {
    backup::count(path)
}

pub fn in_use(path: &Path) -> bool {
    // Read-only, so that asking never writes to the file.
    matches!(redb::ReadOnlyDatabase::open(path), Err(redb::DatabaseError::DatabaseAlreadyOpen))
}

pub fn snapshot_file(from: &Path, to: &Path) -> R<Snapshot> {
    backup::snapshot_file(from, to)
}

impl RedbBackend {
    /// Opens (or creates) the database file; it and its directory are private to this user.
    /// `cache_bytes` bounds the memory redb keeps for pages it read.
    pub fn open(path: &Path, cache_bytes: usize) -> R<Self> {
        data_dir::prepare(path)?;
        let db = Database::builder().set_cache_size(cache_bytes).create(path)?;
        let backend = Self { db: Arc::new(db), group: GroupCommit::new() };
        backend.prepare()?;
        Ok(backend)
    }

    /// Creates every table (reading a never-created one fails) and checks the schema version.
    fn prepare(&self) -> R<()> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let version = meta.get("schema_version")?.map(|g| g.value());
            match version {
                Some(v) if v > SCHEMA_VERSION => return Err(StoreError::TooNew(v)),
                Some(v) if v < SCHEMA_VERSION => {
                    if v < 2 {
                        audit::build_subject_index(&tx)?;
                    }
                    if v < 3 {
                        audit::build_event_index(&tx)?;
                        users::build_facets(&tx)?;
                    }
                    audit::build_event_counts(&tx)?;
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                }
            }
            tx.open_table(USERS)?;
            tx.open_table(USER_INDEX)?;
            tx.open_table(USER_FACETS)?;
            tx.open_table(SESSIONS)?;
            tx.open_multimap_table(USER_SESSIONS)?;
            tx.open_table(REFRESH_TOKENS)?;
            tx.open_table(REVOCATIONS)?;
            tx.open_table(SIGNING_KEYS)?;
            tx.open_table(ROLES)?;
            tx.open_table(AUDIT)?;
            tx.open_table(AUDIT_BY_SUBJECT)?;
            tx.open_table(AUDIT_BY_EVENT)?;
            tx.open_table(AUDIT_COUNTS)?;
            tx.open_table(WEBHOOK_OUTBOX)?;
            tx.open_table(WEBHOOK_PENDING)?;
            tx.open_table(CLIENTS)?;
            tx.open_table(WEBHOOKS)?;
            tx.open_table(SECRETS)?;
            tx.open_table(ONE_TIME)?;
            tx.open_table(ONE_TIME_TOKENS)?;
            tx.open_table(IDENTITIES)?;
            tx.open_table(IDENTITY_INDEX)?;
            tx.open_multimap_table(USER_IDENTITIES)?;
            tx.open_table(PASSKEYS)?;
            tx.open_table(PASSKEY_INDEX)?;
            tx.open_multimap_table(USER_PASSKEYS)?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl Backend for RedbBackend {
    fn begin_read(&self) -> R<Box<dyn ReadTx + '_>> {
        Ok(Box::new(Read { tx: self.db.begin_read()? }))
    }

    fn begin_write(&self) -> R<Box<dyn Transaction + '_>> {
        let slot = self.group.enter();
        let tx = self.db.begin_write()?;
        Ok(Box::new(Write { tx, db: Arc::clone(&self.db), group: Arc::clone(&self.group), slot }))
    }

    fn observe_commit_batches(&self, f: BatchObserver) {
        self.group.observe(f);
    }

    fn snapshot(&self, to: &Path) -> R<Snapshot> {
        backup::snapshot(&*self.db, to)
    }
}

pub(super) struct Read {
    tx: ReadTransaction,
}

pub(super) struct Write {
    tx: WriteTransaction,
    db: Arc<Database>,
    group: Arc<GroupCommit>,
    slot: Slot,
}

impl Transaction for Write {
    fn commit(self: Box<Self>) -> R<()> {
        let Write { tx, db, group, slot } = *self;
        group.commit(&db, tx, slot)
    }

    fn abort(self: Box<Self>) {
        // Dropping an uncommitted transaction rolls it back; an abort error changes nothing.
        let _ = self.tx.abort();
    }
}

/// Implements a read trait for both kinds of transaction (redb's are different types with the
/// same table-reading API).
macro_rules! for_both {
    (impl $trait:path { $($body:tt)* }) => {
        impl $trait for super::Read { $($body)* }
        impl $trait for super::Write { $($body)* }
    };
}
use for_both;

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
