//! Records as last read (users, clients), for reads that need no transaction: `GET /v1/me`, a
//! client presenting itself at the token endpoint.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use uuid::Uuid;

use super::Expiring;
use crate::model::{Client, User};

pub type UserCache = RecordCache<User>;
pub type ClientCache = RecordCache<Client>;

/// Every committed write of a record drops its entry, and so does another node's (via the change
/// feed). A read that raced a write does not store what it read.
pub struct RecordCache<T> {
    entries: Expiring<Uuid, Arc<T>>,
    /// Bumped after every committed write, before its entry is dropped.
    writes: AtomicU64,
}

impl Default for UserCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl Default for ClientCache {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl<T: Send + Sync + 'static> RecordCache<T> {
    fn new(max_entries: u64) -> Self {
        // The time bound limits staleness should a change notice from another node ever be lost.
        Self { entries: Expiring::new(max_entries, Duration::from_secs(60)), writes: AtomicU64::new(0) }
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<T>> {
        self.entries.get(&id)
    }

    /// Reads a record with `read` and keeps it, unless a write of any record raced the read.
    pub fn load<E>(&self, id: Uuid, read: impl FnOnce() -> Result<Option<T>, E>) -> Result<Option<Arc<T>>, E> {
        let mark = self.writes.load(Ordering::Acquire);
        let Some(record) = read()? else { return Ok(None) };
        let record = Arc::new(record);
        self.keep(mark, id, &record);
        Ok(Some(record))
    }

    fn keep(&self, mark: u64, id: Uuid, record: &Arc<T>) {
        if self.writes.load(Ordering::Acquire) != mark {
            return;
        }
        self.entries.insert(id, Arc::clone(record));
        // A write that committed between the check and the insert bumped the count before
        // dropping the entry, so either it dropped this one or it is seen here.
        if self.writes.load(Ordering::Acquire) != mark {
            self.entries.remove(&id);
        }
    }

    /// Forgets a record that was written, or (`None`) every record.
    pub fn forget(&self, id: Option<Uuid>) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        match id {
            Some(id) => self.entries.remove(&id),
            None => self.entries.clear(),
        }
    }

    pub fn sweep(&self) {
        self.entries.sweep();
    }
}
