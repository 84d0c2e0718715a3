//! Users as last read, for reads that need no transaction (`GET /v1/me`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use uuid::Uuid;

use super::Expiring;
use crate::model::User;

/// Every committed write of a user drops its entry, and so does another node's (via the change
/// feed). A read that raced a write does not store what it read.
pub struct UserCache {
    users: Expiring<Uuid, Arc<User>>,
    /// Bumped after every committed user write, before its entry is dropped.
    writes: AtomicU64,
}

impl Default for UserCache {
    fn default() -> Self {
        // The time bound limits staleness should a change notice from another node ever be lost.
        Self { users: Expiring::new(100_000, Duration::from_secs(60)), writes: AtomicU64::new(0) }
    }
}

impl UserCache {
    pub fn get(&self, id: Uuid) -> Option<Arc<User>> {
        self.users.get(&id)
    }

    /// Where a read starts: [`Self::keep`] stores what it read only if no write came since.
    pub fn mark(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    pub fn keep(&self, mark: u64, user: &Arc<User>) {
        if self.writes.load(Ordering::Acquire) == mark {
            self.users.insert(user.id, Arc::clone(user));
        }
    }

    /// Forgets a user that was written, or (`None`) every user.
    pub fn forget(&self, id: Option<Uuid>) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        match id {
            Some(id) => self.users.remove(&id),
            None => self.users.clear(),
        }
    }

    pub fn sweep(&self) {
        self.users.sweep();
    }
}
