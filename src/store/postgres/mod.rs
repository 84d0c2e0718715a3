//! The PostgreSQL backend, for several authd nodes sharing one database. The only code that
//! knows PostgreSQL. Store work runs on blocking threads, which wait here on the async driver.
//!
//! Concurrency: a write transaction is READ COMMITTED, and every single-record read in it
//! (`user`, `session`, `refresh`, `client`) takes the row with `FOR UPDATE`, so two nodes that
//! rotate one refresh token, or change one user, take turns. Uniqueness of login names is the
//! primary key of `user_logins`.

mod audit;
mod changes;
mod clients;
mod identities;
mod keys;
mod one_time;
mod passkeys;
mod revocations;
mod roles;
mod sessions;
mod users;
mod webhooks;

use std::{cell::Cell, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde::{Serialize, de::DeserializeOwned};
use tokio::runtime::Handle;
use tokio_postgres::{NoTls, Row, types::ToSql};

use super::{
    StoreError,
    ports::{Backend, ChangeFeed, R, ReadTx, Transaction},
};

/// Versioned schema changes, applied in order at start; never destructive. Beside each, the
/// oldest schema (the latest migration of a release) whose nodes keep serving on the changed
/// one: additive first (docs/operations.md) makes it the release before's, that is its latest
/// migration (a release adding two gives both the same number). It is recorded with the
/// version, so that an older node restarting in a rolling upgrade starts when it may.
const MIGRATIONS: &[(i32, i32, &str)] = &[
    (1, 0, include_str!("migrations/0001_initial.sql")),
    (2, 1, include_str!("migrations/0002_secrets.sql")),
    (3, 2, include_str!("migrations/0003_one_time.sql")),
    (4, 3, include_str!("migrations/0004_identities.sql")),
    (5, 4, include_str!("migrations/0005_audit_subject.sql")),
    (6, 5, include_str!("migrations/0006_listing_indexes.sql")),
    (7, 6, include_str!("migrations/0007_one_time_lookups.sql")),
    (8, 7, include_str!("migrations/0008_passkeys.sql")),
    (9, 8, include_str!("migrations/0009_audit_counts.sql")),
];

fn latest_migration() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _, _)| *v)
}

/// Whether every migration after `$1` (this build's latest) lets nodes of that schema serve.
const SERVES_NEWER: &str = "SELECT coalesce(bool_and(serves_from IS NOT NULL AND serves_from <= $1), true) \
     FROM authd_migrations WHERE version > $1";

/// Nodes starting at once take turns at migrating.
const MIGRATION_LOCK: i64 = 0x6175_7468_6400;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: String,
    pub pool_size: usize,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
    /// `Some`: TLS required, the server verified against this CA file, or the system's roots.
    pub tls: Option<Option<std::path::PathBuf>>,
}

/// The TLS client a connection uses, if any.
#[derive(Clone)]
enum Tls {
    Off,
    On(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Tls {
    fn from_options(opts: &PgOptions) -> R<Self> {
        let Some(ca) = &opts.tls else { return Ok(Tls::Off) };
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| StoreError::Backend(format!("storage.tls_ca {}: {e}", path.display())))?;
                for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                    let cert: rustls::pki_types::CertificateDer<'static> =
                        cert.map_err(|e| StoreError::Backend(format!("storage.tls_ca: {e}")))?;
                    roots.add(cert).map_err(|e| StoreError::Backend(format!("storage.tls_ca: {e}")))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        Ok(Tls::On(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
    }
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() || e.code().is_none() {
        StoreError::Unavailable(format!("postgres: {e}"))
    } else {
        StoreError::Backend(format!("postgres: {e}"))
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("postgres pool: {e}"))
}

pub struct PgBackend {
    pool: Pool,
    handle: Handle,
    config: tokio_postgres::Config,
    tls: Tls,
    /// Names this process in the change notices it sends, so that it skips its own.
    origin: uuid::Uuid,
}

impl PgBackend {
    /// Connects and brings the schema up to date. Call on a blocking thread inside the runtime.
    pub fn open(opts: &PgOptions) -> R<Self> {
        let mut cfg: tokio_postgres::Config =
            opts.url.parse().map_err(|e| StoreError::Backend(format!("storage.url: {e}")))?;
        cfg.connect_timeout(opts.connect_timeout);
        cfg.options(format!("-c statement_timeout={}", opts.statement_timeout.as_millis()));
        cfg.application_name("authd");
        let tls = Tls::from_options(opts)?;
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &tls {
            Tls::Off => Manager::from_config(cfg.clone(), NoTls, manager_config),
            Tls::On(connector) => {
                cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
                Manager::from_config(cfg.clone(), connector.clone(), manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(opts.connect_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("postgres pool: {e}")))?;
        let handle = Handle::try_current()
            .map_err(|_| StoreError::Backend("the postgres backend needs a tokio runtime".into()))?;
        let backend = Self { pool, handle, config: cfg, tls, origin: uuid::Uuid::new_v4() };
        backend.migrate()?;
        Ok(backend)
    }

    /// The migration the database has, and the ones this build would apply (version and the
    /// first line of each), without applying any.
    pub fn plan(opts: &PgOptions) -> R<(u64, Vec<(u64, String)>)> {
        let mut cfg: tokio_postgres::Config =
            opts.url.parse().map_err(|e| StoreError::Backend(format!("storage.url: {e}")))?;
        cfg.connect_timeout(opts.connect_timeout);
        let handle = Handle::try_current()
            .map_err(|_| StoreError::Backend("the postgres backend needs a tokio runtime".into()))?;
        let applied: i32 = handle.block_on(async {
            let client = match Tls::from_options(opts)? {
                Tls::Off => {
                    let (client, conn) = cfg.connect(NoTls).await.map_err(pg_error)?;
                    tokio::spawn(conn);
                    client
                }
                Tls::On(connector) => {
                    cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
                    let (client, conn) = cfg.connect(connector).await.map_err(pg_error)?;
                    tokio::spawn(conn);
                    client
                }
            };
            let exists: bool = client
                .query_one("SELECT to_regclass('authd_migrations') IS NOT NULL", &[])
                .await
                .map_err(pg_error)?
                .get(0);
            if !exists {
                return Ok::<_, StoreError>(0);
            }
            let applied: i32 = client
                .query_one("SELECT coalesce(max(version), 0) FROM authd_migrations", &[])
                .await
                .map_err(pg_error)?
                .get(0);
            if applied > latest_migration() {
                let serves = client.query_one(SERVES_NEWER, &[&latest_migration()]).await.is_ok_and(|r| r.get(0));
                if !serves {
                    return Err(StoreError::TooNew(u64::try_from(applied).unwrap_or(0)));
                }
            }
            Ok(applied)
        })?;
        let pending = MIGRATIONS
            .iter()
            .filter(|(v, _, _)| *v > applied)
            .map(|(v, _, sql)| {
                let first = sql.lines().next().unwrap_or_default().trim_start_matches("--").trim().to_owned();
                (u64::try_from(*v).unwrap_or(0), first)
            })
            .collect();
        Ok((u64::try_from(applied).unwrap_or(0), pending))
    }

    fn connect(&self) -> R<Conn> {
        let client = self.handle.block_on(self.pool.get()).map_err(pool_error)?;
        Ok(Conn { client, handle: self.handle.clone(), begin: Cell::new(None) })
    }

    fn migrate(&self) -> R<()> {
        let c = self.connect()?;
        c.batch("BEGIN")?;
        let done = (|| {
            c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            c.batch(
                "CREATE TABLE IF NOT EXISTS authd_migrations (version integer PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
            )?;
            // Asked first: the ALTER would lock the table at every start.
            let has_column: bool = c
                .one(
                    "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
                     AND table_name = 'authd_migrations' AND column_name = 'serves_from')",
                    &[],
                )?
                .get(0);
            if !has_column {
                c.batch("ALTER TABLE authd_migrations ADD COLUMN serves_from integer")?;
            }
            let applied: i32 = c.one("SELECT coalesce(max(version), 0) FROM authd_migrations", &[])?.get(0);
            if applied > latest_migration() {
                if !c.one(SERVES_NEWER, &[&latest_migration()])?.get::<_, bool>(0) {
                    return Err(StoreError::TooNew(u64::try_from(applied).unwrap_or(0)));
                }
                tracing::warn!(
                    schema = applied,
                    "the database was migrated by a newer authd whose changes let this release serve on; upgrade this node"
                );
            }
            for (version, serves_from, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
                c.batch(sql)?;
                c.execute(
                    "INSERT INTO authd_migrations (version, serves_from) VALUES ($1, $2)",
                    &[version, serves_from],
                )?;
                tracing::info!(version, "applied database migration");
            }
            Ok(())
        })();
        match done {
            Ok(()) => c.batch("COMMIT"),
            Err(e) => {
                let _ = c.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl Backend for PgBackend {
    fn begin_read(&self) -> R<Box<dyn ReadTx + '_>> {
        let c = self.connect()?;
        // One snapshot for everything the closure reads.
        c.begin.set(Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
        Ok(Box::new(Read { c, open: true }))
    }

    fn begin_write(&self) -> R<Box<dyn Transaction + '_>> {
        let c = self.connect()?;
        c.begin.set(Some("BEGIN"));
        Ok(Box::new(Write { c, open: true, origin: self.origin }))
    }

    fn changes(&self) -> Option<ChangeFeed> {
        Some(match &self.tls {
            Tls::Off => changes::listen(self.config.clone(), NoTls, &self.handle, self.origin),
            Tls::On(connector) => changes::listen(self.config.clone(), connector.clone(), &self.handle, self.origin),
        })
    }
}

/// A pooled connection, used from a blocking thread.
struct Conn {
    client: Object,
    handle: Handle,
    /// A transaction's BEGIN, held back to go out with its first statement: one round trip
    /// for both. A transaction that sends no statement sends no BEGIN, COMMIT or ROLLBACK.
    begin: Cell<Option<&'static str>>,
}

impl Conn {
    /// Runs `statement`, pipelined behind the BEGIN still held back, if any. The connection
    /// keeps their order, so the statement runs inside the transaction.
    async fn after_begin<T>(
        &self,
        statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, tokio_postgres::Error> {
        match self.begin.take() {
            None => statement.await,
            Some(begin) => {
                let (began, done) = tokio::join!(self.client.batch_execute(begin), statement);
                began?;
                done
            }
        }
    }

    fn batch(&self, sql: &str) -> R<()> {
        self.handle.block_on(self.after_begin(self.client.batch_execute(sql))).map_err(pg_error)
    }

    /// COMMIT or ROLLBACK: nothing to send when the transaction never began.
    fn end(&self, sql: &str) -> R<()> {
        if self.begin.take().is_some() {
            return Ok(());
        }
        self.handle.block_on(self.client.batch_execute(sql)).map_err(pg_error)
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> R<u64> {
        self.handle
            .block_on(self.after_begin(async {
                let stmt = self.client.prepare_cached(sql).await?;
                self.client.execute(&stmt, params).await
            }))
            .map_err(pg_error)
    }

    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> R<Vec<Row>> {
        self.handle
            .block_on(self.after_begin(async {
                let stmt = self.client.prepare_cached(sql).await?;
                self.client.query(&stmt, params).await
            }))
            .map_err(pg_error)
    }

    fn one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> R<Row> {
        self.rows(sql, params)?.into_iter().next().ok_or_else(|| StoreError::Backend(format!("no row: {sql}")))
    }

    /// The `data` documents of a query, decoded.
    fn docs<T: DeserializeOwned>(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> R<Vec<T>> {
        self.rows(sql, params)?.iter().map(|r| from_doc(r.get(0))).collect()
    }

    fn doc<T: DeserializeOwned>(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> R<Option<T>> {
        Ok(self.docs(sql, params)?.into_iter().next())
    }
}

pub(super) struct Read {
    c: Conn,
    open: bool,
}

pub(super) struct Write {
    c: Conn,
    open: bool,
    origin: uuid::Uuid,
}

/// What a single-record read adds in each kind of transaction.
trait Lock {
    const LOCK: &'static str;
}

impl Lock for Read {
    const LOCK: &'static str = "";
}

impl Lock for Write {
    const LOCK: &'static str = " FOR UPDATE";
}

impl Transaction for Write {
    fn commit(mut self: Box<Self>) -> R<()> {
        self.open = false;
        self.c.end("COMMIT")
    }

    fn abort(mut self: Box<Self>) {
        self.open = false;
        let _ = self.c.end("ROLLBACK");
    }
}

/// A connection goes back to the pool only outside a transaction.
impl Drop for Write {
    fn drop(&mut self) {
        if self.open {
            let _ = self.c.end("ROLLBACK");
        }
    }
}

impl Drop for Read {
    fn drop(&mut self) {
        if self.open {
            let _ = self.c.end("ROLLBACK");
        }
    }
}

/// Implements a read trait for both kinds of transaction; `Self::LOCK` tells them apart.
macro_rules! for_both {
    (impl $trait:path { $($body:tt)* }) => {
        impl $trait for super::Read { $($body)* }
        impl $trait for super::Write { $($body)* }
    };
}
use for_both;

fn to_doc<T: Serialize>(value: &T) -> R<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Codec(e.to_string()))
}

fn from_doc<T: DeserializeOwned>(value: serde_json::Value) -> R<T> {
    serde_json::from_value(value).map_err(|e| StoreError::Codec(e.to_string()))
}

/// Times and counters are `u64` here and `bigint` there.
fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
