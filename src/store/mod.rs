//! The only code that knows redb. Services run closures over a [`ReadTx`] or [`WriteTx`];
//! whatever a closure writes commits together or not at all.

mod codec;
pub mod data_dir;
mod tables;
mod tx;

use std::{path::Path, sync::Arc};

use redb::{Database, ReadableDatabase as _, ReadableTable as _};
pub use tx::{ReadTx, UserLookup, WriteTx, index_key};

use tables::*;

use crate::model::WebhookEndpoint;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is already open in another process")]
    Locked,
    #[error("{0} is already taken")]
    Duplicate(&'static str),
    #[error("the database was written by a newer authd (schema {0})")]
    TooNew(u64),
    #[error("cannot decode a stored record: {0}")]
    Codec(String),
    #[error("cannot prepare the data directory {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Insecure(String),
    #[error("redb: {0}")]
    Db(#[from] redb::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => StoreError::Locked,
            other => StoreError::Db(other.into()),
        }
    }
}

/// The embedded database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// Webhook subscriptions: every audit event they want is queued with it.
    webhooks: Arc<Vec<WebhookEndpoint>>,
}

impl Store {
    /// Opens (or creates) the database file; it and its directory are private to this user.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Vec::new())
    }

    pub fn open_with(path: &Path, webhooks: Vec<WebhookEndpoint>) -> Result<Self, StoreError> {
        data_dir::prepare(path)?;
        let db = Database::builder().create(path)?;
        let store = Self { db: Arc::new(db), webhooks: Arc::new(webhooks) };
        store.prepare()?;
        Ok(store)
    }

    /// Creates every table (reading a never-created one fails) and checks the schema version.
    fn prepare(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let version = meta.get("schema_version")?.map(|g| g.value());
            match version {
                Some(v) if v > SCHEMA_VERSION => return Err(StoreError::TooNew(v)),
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                }
            }
            tx.open_table(USERS)?;
            tx.open_table(USER_INDEX)?;
            tx.open_table(SESSIONS)?;
            tx.open_multimap_table(USER_SESSIONS)?;
            tx.open_table(REFRESH_TOKENS)?;
            tx.open_table(REVOCATIONS)?;
            tx.open_table(SIGNING_KEYS)?;
            tx.open_table(ROLES)?;
            tx.open_table(AUDIT)?;
            tx.open_table(WEBHOOK_OUTBOX)?;
            tx.open_table(WEBHOOK_PENDING)?;
            tx.open_table(CLIENTS)?;
            tx.open_table(WEBHOOKS)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn read<T, E: From<StoreError>>(&self, f: impl FnOnce(&ReadTx) -> Result<T, E>) -> Result<T, E> {
        let tx = self.db.begin_read().map_err(StoreError::from)?;
        f(&ReadTx::new(tx))
    }

    /// Runs `f` in one write transaction: committed (durably) if it returns `Ok`, rolled back
    /// otherwise.
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&mut WriteTx) -> Result<T, E>) -> Result<T, E> {
        let tx = self.db.begin_write().map_err(StoreError::from)?;
        let mut wtx = WriteTx::new(tx, Arc::clone(&self.webhooks));
        match f(&mut wtx) {
            Ok(v) => {
                wtx.commit()?;
                Ok(v)
            }
            Err(e) => {
                wtx.abort();
                Err(e)
            }
        }
    }
}
