//! Durable storage behind ports. Services run closures over a read transaction
//! (`&dyn ReadTx`) or a write transaction (`&mut dyn WriteTx`); whatever a write closure does
//! commits together or not at all, on every backend. Nothing here names a backend's types.

mod copy;
pub mod data_dir;
mod ports;
mod postgres;
mod redb;

use std::{path::Path, sync::Arc};

use crate::config::{StorageBackend, StorageConfig};

pub use copy::{Tally, copy_all};
/// The schema version of the redb files this build writes.
pub const REDB_SCHEMA_VERSION: u64 = redb::SCHEMA_VERSION;
pub use ports::{
    AuditQuery, AuditReads, AuditWrites, Backend, Change, ChangeFeed, ClientReads, ClientWrites, KeyReads, KeyWrites,
    LoginName, R, ReadTx, RevocationReads, RevocationWrites, RoleReads, RoleWrites, SessionReads, SessionWrites,
    Transaction, UserQuery, UserReads, UserWrites, WebhookReads, WebhookWrites, WriteTx, login_names,
};

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
    /// The engine failed; the message is for logs, never for clients.
    #[error("{0}")]
    Backend(String),
    /// The engine cannot be reached (a database server down); retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// This engine does not do that (a copy of a PostgreSQL database is `pg_dump`'s job).
    #[error("{0}")]
    Unsupported(&'static str),
}

/// What a copy of the database holds: its schema version and each table's record count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub schema_version: u64,
    pub tables: Vec<(String, u64)>,
}

/// Whether a span of a request is current (telemetry): storage spans hang under one or none.
fn in_request() -> bool {
    !tracing::Span::current().is_none()
}

/// The database, whichever engine holds it. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// Opens the configured backend. redb: creates the file (private to this user);
    /// postgres: connects and migrates the schema. Call on a blocking thread.
    pub fn open(cfg: &StorageConfig) -> Result<Self, StoreError> {
        let backend: Arc<dyn Backend> = match cfg.backend {
            StorageBackend::Redb => Arc::new(redb::RedbBackend::open(&cfg.path, cfg.cache_mb << 20)?),
            StorageBackend::Postgres => Arc::new(postgres::PgBackend::open(&postgres::PgOptions {
                url: cfg.url.as_ref().map(|u| u.0.clone()).unwrap_or_default(),
                pool_size: cfg.pool_size,
                statement_timeout: cfg.statement_timeout.0,
                connect_timeout: cfg.connect_timeout.0,
                tls: cfg.tls.then(|| cfg.tls_ca.clone()),
            })?),
        };
        Ok(Self { backend })
    }

    /// Changes other nodes commit, when the database is shared.
    pub fn changes(&self) -> Option<ChangeFeed> {
        self.backend.changes()
    }

    /// Reports the size of each group-commit batch, where the backend batches commits.
    pub fn observe_commit_batches(&self, f: impl Fn(usize) + Send + Sync + 'static) {
        self.backend.observe_commit_batches(Box::new(f));
    }

    /// Opens a redb file directly.
    pub fn open_redb(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { backend: Arc::new(redb::RedbBackend::open(path, StorageConfig::default().cache_mb << 20)?) })
    }

    /// Writes a consistent copy of the database into the new, empty file `to`. Call on a
    /// blocking thread.
    pub fn snapshot(&self, to: &Path) -> Result<Snapshot, StoreError> {
        self.backend.snapshot(to)
    }

    /// A consistent copy of a redb file that no process holds, without changing it.
    pub fn snapshot_redb(from: &Path, to: &Path) -> Result<Snapshot, StoreError> {
        redb::snapshot_file(from, to)
    }

    /// The schema the configured database has, and the steps opening it in this build would
    /// take (none applied here). Call on a blocking thread.
    pub fn plan(cfg: &StorageConfig) -> Result<(u64, Vec<(u64, String)>), StoreError> {
        match cfg.backend {
            StorageBackend::Redb => redb::plan(&cfg.path),
            StorageBackend::Postgres => postgres::PgBackend::plan(&postgres::PgOptions {
                url: cfg.url.as_ref().map(|u| u.0.clone()).unwrap_or_default(),
                pool_size: 1,
                statement_timeout: cfg.statement_timeout.0,
                connect_timeout: cfg.connect_timeout.0,
                tls: cfg.tls.then(|| cfg.tls_ca.clone()),
            }),
        }
    }

    /// What a redb file holds, table by table, read-only.
    pub fn count_redb(path: &Path) -> Result<Snapshot, StoreError> {
        redb::count(path)
    }

    /// Whether another process holds the redb file open.
    pub fn redb_in_use(path: &Path) -> bool {
        redb::in_use(path)
    }

    /// Checks a redb file's integrity and tells what it holds, without upgrading it.
    pub fn describe_redb(path: &Path) -> Result<Snapshot, StoreError> {
        redb::describe(path)
    }

    pub fn read<T, E: From<StoreError>>(&self, f: impl FnOnce(&dyn ReadTx) -> Result<T, E>) -> Result<T, E> {
        // Only inside a request's trace: the server's own rounds would each be a trace.
        let _span = in_request().then(|| tracing::info_span!(target: "authd::otel", "storage.read").entered());
        let tx = self.backend.begin_read()?;
        f(&*tx)
    }

    /// Runs `f` in one write transaction: committed (durably) if it returns `Ok`, rolled back
    /// otherwise.
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&mut dyn WriteTx) -> Result<T, E>) -> Result<T, E> {
        let _span = in_request().then(|| tracing::info_span!(target: "authd::otel", "storage.write").entered());
        let mut tx = self.backend.begin_write()?;
        match f(&mut *tx) {
            Ok(v) => {
                tx.commit()?;
                Ok(v)
            }
            Err(e) => {
                tx.abort();
                Err(e)
            }
        }
    }
}
