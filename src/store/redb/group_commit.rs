//! Group commit. redb writes one transaction at a time and a durable commit costs an fsync, so
//! writers that queue up behind each other commit without syncing (`Durability::None`, still
//! atomic), and one sync then makes all of them durable together. Every caller returns only once
//! a sync covers its commit, so nothing acknowledged is lost on power failure.
//!
//! A writer alone (nobody else queued, no sync running) commits durably itself, as it always did:
//! no added latency when idle. Under load the batch grows to however many writers queued during
//! the previous sync.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use redb::{Database, Durability, WriteTransaction};

use crate::store::{R, StoreError, ports::BatchObserver};

pub(super) struct GroupCommit {
    state: Mutex<State>,
    synced: Condvar,
    observer: OnceLock<BatchObserver>,
}

#[derive(Default)]
struct State {
    /// Writers holding or waiting for the write transaction.
    writers: usize,
    /// Commits so far, numbered in the order they are counted.
    committed: u64,
    /// Every commit numbered up to this one is durable.
    durable: u64,
    /// A sync (or a lone durable commit) is under way.
    syncing: bool,
}

/// A writer's place in the queue; leaving it (commit, abort or failure) is counted once.
pub(super) struct Slot {
    group: Arc<GroupCommit>,
    counted: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.counted {
            self.group.lock().writers -= 1;
        }
    }
}

impl GroupCommit {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State::default()), synced: Condvar::new(), observer: OnceLock::new() })
    }

    pub fn observe(&self, f: BatchObserver) {
        let _ = self.observer.set(f);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain counters behind; they stay usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn batch(&self, n: u64) {
        if let Some(f) = self.observer.get() {
            f(usize::try_from(n).unwrap_or(usize::MAX));
        }
    }

    /// Call before waiting for the write transaction.
    pub fn enter(self: &Arc<Self>) -> Slot {
        self.lock().writers += 1;
        Slot { group: Arc::clone(self), counted: true }
    }

    /// Commits `tx` and returns once it is durable.
    pub fn commit(&self, db: &Database, mut tx: WriteTransaction, mut slot: Slot) -> R<()> {
        let mut s = self.lock();
        if !s.syncing && s.writers == 1 {
            // Alone: every commit counted so far finished before this one, and any writer that
            // queues meanwhile commits after it and is counted later, with a higher number.
            s.syncing = true;
            s.committed += 1;
            let mine = s.committed;
            drop(s);
            let result = tx.commit();
            let mut s = self.lock();
            s.syncing = false;
            s.writers -= 1;
            slot.counted = false;
            if result.is_ok() {
                self.batch(mine - s.durable);
                s.durable = mine;
            }
            drop(s);
            self.synced.notify_all();
            return Ok(result?);
        }
        drop(s);
        tx.set_durability(Durability::None).map_err(|e| StoreError::Backend(format!("redb: {e}")))?;
        let result = tx.commit();
        let mut s = self.lock();
        s.writers -= 1;
        slot.counted = false;
        result?;
        s.committed += 1;
        let mine = s.committed;
        loop {
            if s.durable >= mine {
                return Ok(());
            }
            if s.syncing {
                s = self.synced.wait(s).unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Lead the next sync: it covers every commit counted so far, all of which finished
            // before this sync's transaction begins.
            s.syncing = true;
            let target = s.committed;
            drop(s);
            let result = sync(db);
            s = self.lock();
            s.syncing = false;
            if result.is_ok() && target > s.durable {
                self.batch(target - s.durable);
                s.durable = target;
            }
            self.synced.notify_all();
            result?;
        }
    }
}

/// A durable commit of nothing makes every earlier non-durable commit durable.
fn sync(db: &Database) -> R<()> {
    let tx = db.begin_write()?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use uuid::Uuid;

    use crate::{
        model::{Revocation, RevocationKind},
        store::{Store, StoreError},
    };

    fn revocation() -> Revocation {
        Revocation { kind: RevocationKind::Session, id: Uuid::now_v7(), since_ms: 0, min_gen: 0, expires_at: u64::MAX }
    }

    #[test]
    fn concurrent_writers_share_syncs_and_every_commit_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/authd.redb");
        let store = Store::open_redb(&path).unwrap();
        let (commits, largest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, l) = (Arc::clone(&commits), Arc::clone(&largest));
        store.observe_commit_batches(move |n| {
            c.fetch_add(n, Ordering::Relaxed);
            l.fetch_max(n, Ordering::Relaxed);
        });
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..40 {
                        if i % 10 == 9 {
                            // A failed closure rolls back alone, in the middle of the others.
                            let r: Result<(), StoreError> = store.write(|tx| {
                                tx.put_revocation(&revocation())?;
                                Err(StoreError::Duplicate("test"))
                            });
                            assert!(r.is_err());
                        } else {
                            store.write(|tx| tx.put_revocation(&revocation())).unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(commits.load(Ordering::Relaxed), 16 * 36, "every commit is counted in exactly one sync");
        assert!(largest.load(Ordering::Relaxed) > 1, "queued writers share a sync");
        drop(store);
        let reopened = Store::open_redb(&path).unwrap();
        let stored = reopened.read(|tx| tx.revocations()).unwrap();
        assert_eq!(stored.len(), 16 * 36);
    }

    #[test]
    fn a_lone_writer_commits_durably_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_redb(&dir.path().join("data/authd.redb")).unwrap();
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let b = Arc::clone(&batches);
        store.observe_commit_batches(move |n| b.lock().unwrap().push(n));
        for _ in 0..3 {
            store.write(|tx| tx.put_revocation(&revocation())).unwrap();
        }
        assert_eq!(*batches.lock().unwrap(), vec![1, 1, 1]);
    }
}
