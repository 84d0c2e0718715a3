//! A consistent copy of the live file: every table read in one read transaction, so writers go
//! on meanwhile and the copy holds exactly what was committed when it began.

use std::path::Path;

use redb::{
    Database, Key, MultimapTableDefinition, MultimapTableHandle as _, ReadOnlyDatabase, ReadTransaction,
    ReadableDatabase, ReadableMultimapTable as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition,
    TableHandle as _, Value, WriteTransaction,
};

use super::tables::*;
use crate::store::{R, Snapshot, StoreError};

/// Copies every table of `db` into a new database at `to` (an empty file the caller made private).
pub(super) fn snapshot(db: &impl ReadableDatabase, to: &Path) -> R<Snapshot> {
    let read = db.begin_read()?;
    // One write transaction of the whole copy: a small page cache, whatever storage.cache_mb says.
    let copy = Database::builder().set_cache_size(16 << 20).create(to)?;
    let write = copy.begin_write()?;
    let mut tables = Vec::new();
    // A table an older file never had is left out of its copy, as it was.
    let mut t = |name: &str, n: Option<u64>| {
        if let Some(n) = n {
            tables.push((name.to_owned(), n));
        }
    };
    t(META.name(), table(&read, &write, META)?);
    t(USERS.name(), table(&read, &write, USERS)?);
    t(USER_INDEX.name(), table(&read, &write, USER_INDEX)?);
    t(USER_FACETS.name(), table(&read, &write, USER_FACETS)?);
    t(SESSIONS.name(), table(&read, &write, SESSIONS)?);
    t(USER_SESSIONS.name(), multimap(&read, &write, USER_SESSIONS)?);
    t(REFRESH_TOKENS.name(), table(&read, &write, REFRESH_TOKENS)?);
    t(REVOCATIONS.name(), table(&read, &write, REVOCATIONS)?);
    t(SIGNING_KEYS.name(), table(&read, &write, SIGNING_KEYS)?);
    t(AUDIT.name(), table(&read, &write, AUDIT)?);
    t(AUDIT_BY_SUBJECT.name(), table(&read, &write, AUDIT_BY_SUBJECT)?);
    t(AUDIT_BY_EVENT.name(), table(&read, &write, AUDIT_BY_EVENT)?);
    t(AUDIT_COUNTS.name(), table(&read, &write, AUDIT_COUNTS)?);
    t(WEBHOOK_OUTBOX.name(), table(&read, &write, WEBHOOK_OUTBOX)?);
    t(WEBHOOK_PENDING.name(), table(&read, &write, WEBHOOK_PENDING)?);
    t(WEBHOOKS.name(), table(&read, &write, WEBHOOKS)?);
    t(CLIENTS.name(), table(&read, &write, CLIENTS)?);
    t(SECRETS.name(), table(&read, &write, SECRETS)?);
    t(ROLES.name(), table(&read, &write, ROLES)?);
    t(ONE_TIME.name(), table(&read, &write, ONE_TIME)?);
    t(ONE_TIME_TOKENS.name(), table(&read, &write, ONE_TIME_TOKENS)?);
    t(IDENTITIES.name(), table(&read, &write, IDENTITIES)?);
    t(IDENTITY_INDEX.name(), table(&read, &write, IDENTITY_INDEX)?);
    t(USER_IDENTITIES.name(), multimap(&read, &write, USER_IDENTITIES)?);
    t(PASSKEYS.name(), table(&read, &write, PASSKEYS)?);
    t(PASSKEY_INDEX.name(), table(&read, &write, PASSKEY_INDEX)?);
    t(USER_PASSKEYS.name(), multimap(&read, &write, USER_PASSKEYS)?);
    // A table this list forgot would be lost silently: refuse instead.
    let listed = read.list_tables()?.map(|h| h.name().to_owned());
    let listed_multi = read.list_multimap_tables()?.map(|h| h.name().to_owned());
    if let Some(missed) = listed.chain(listed_multi).find(|name| !tables.iter().any(|(n, _)| n == name)) {
        return Err(StoreError::Backend(format!("the backup does not know the table {missed}")));
    }
    write.commit()?;
    let schema_version = read.open_table(META)?.get("schema_version")?.map_or(0, |g| g.value());
    Ok(Snapshot { schema_version, tables })
}

fn table<K: Key + 'static, V: Value + 'static>(
    read: &ReadTransaction,
    write: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> R<Option<u64>> {
    let from = match read.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut to = write.open_table(def)?;
    for row in from.iter()? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
    }
    Ok(Some(from.len()?))
}

fn multimap<K: Key + 'static, V: Key + 'static>(
    read: &ReadTransaction,
    write: &WriteTransaction,
    def: MultimapTableDefinition<K, V>,
) -> R<Option<u64>> {
    let from = match read.open_multimap_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut to = write.open_multimap_table(def)?;
    for row in from.iter()? {
        let (k, values) = row?;
        for v in values {
            to.insert(k.value(), v?.value())?;
        }
    }
    Ok(Some(from.len()?))
}

/// A copy of a file no server holds, opened read-only: an older file is copied as it is, not
/// upgraded.
pub(super) fn snapshot_file(from: &Path, to: &Path) -> R<Snapshot> {
    snapshot(&ReadOnlyDatabase::open(from)?, to)
}

/// What a file holds, read-only (no integrity check, which needs to write).
pub(super) fn count(path: &Path) -> R<Snapshot> {
    described(&ReadOnlyDatabase::open(path)?)
}

/// What a copy holds, read back from its file after redb's integrity check.
pub(super) fn describe(path: &Path) -> R<Snapshot> {
    let mut db = Database::open(path)?;
    if !db.check_integrity()? {
        return Err(StoreError::Backend("the database file failed its integrity check".into()));
    }
    described(&db)
}

/// The schema version and each table's length.
fn described(db: &impl ReadableDatabase) -> R<Snapshot> {
    let read = db.begin_read()?;
    let mut tables = Vec::new();
    for h in read.list_tables()? {
        let t = read.open_untyped_table(h)?;
        tables.push((t.name().to_owned(), t.len()?));
    }
    for h in read.list_multimap_tables()? {
        let name = h.name().to_owned();
        tables.push((name, read.open_untyped_multimap_table(h)?.len()?));
    }
    let schema_version = read.open_table(META)?.get("schema_version")?.map_or(0, |g| g.value());
    Ok(Snapshot { schema_version, tables })
}
