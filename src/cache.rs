//! In-memory revocation state, consulted on every authenticated request so that the check never
//! touches the disk. Each entry expires when the tokens it guards would have expired anyway.
//!
//! These caches are deliberately not size-capped: evicting a live revocation would bring a
//! revoked token back. Their size is bounded by time instead (entries live at most one access
//! token lifetime plus leeway).

use std::time::{Duration, Instant};

use moka::{Expiry, sync::Cache};
use uuid::Uuid;

use crate::model::{Revocation, RevocationKind, UnixTime, now};

#[derive(Clone, Copy)]
struct Entry {
    since_ms: u64,
    min_gen: u64,
    expires_at: UnixTime,
}

struct UntilExpiry;

impl Expiry<Uuid, Entry> for UntilExpiry {
    fn expire_after_create(&self, _: &Uuid, v: &Entry, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(v.expires_at.saturating_sub(now())))
    }
    fn expire_after_update(&self, _: &Uuid, v: &Entry, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(Duration::from_secs(v.expires_at.saturating_sub(now())))
    }
}

#[derive(Clone)]
pub struct RevocationCache {
    sessions: Cache<Uuid, Entry>,
    users: Cache<Uuid, Entry>,
}

impl Default for RevocationCache {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationCache {
    pub fn new() -> Self {
        Self {
            sessions: Cache::builder().expire_after(UntilExpiry).build(),
            users: Cache::builder().expire_after(UntilExpiry).build(),
        }
    }

    /// Drops what has expired: moka does so only while the cache is used, so an idle server
    /// would keep it.
    pub fn sweep(&self) {
        self.sessions.run_pending_tasks();
        self.users.run_pending_tasks();
    }

    /// Revocations held in memory (sessions, users).
    pub fn len(&self) -> (u64, u64) {
        (self.sessions.entry_count(), self.users.entry_count())
    }

    pub fn apply(&self, r: &Revocation) {
        if r.expires_at <= now() {
            return;
        }
        let entry = Entry { since_ms: r.since_ms, min_gen: r.min_gen, expires_at: r.expires_at };
        match r.kind {
            RevocationKind::Session => self.sessions.insert(r.id, entry),
            RevocationKind::UserBefore => {
                // A later cut-off supersedes an earlier one.
                let merged = match self.users.get(&r.id) {
                    Some(old) => Entry {
                        since_ms: old.since_ms.max(entry.since_ms),
                        min_gen: old.min_gen.max(entry.min_gen),
                        expires_at: old.expires_at.max(entry.expires_at),
                    },
                    None => entry,
                };
                self.users.insert(r.id, merged);
            }
        }
    }

    /// Is a token of session `sid` for user `sub`, minted at `issued_ms` from authorization
    /// generation `gen`, revoked? A user cut-off covers tokens minted up to and including its
    /// millisecond, and every token of an older generation whenever it was signed.
    pub fn is_revoked(&self, sid: &Uuid, sub: &Uuid, issued_ms: u64, generation: u64) -> bool {
        if self.sessions.contains_key(sid) {
            return true;
        }
        self.users.get(sub).is_some_and(|e| issued_ms <= e.since_ms || generation < e.min_gen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_and_user_revocations_apply() {
        let c = RevocationCache::new();
        let (sid, sub) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(!c.is_revoked(&sid, &sub, 10, 0));
        c.apply(&Revocation {
            kind: RevocationKind::Session,
            id: sid,
            since_ms: 0,
            min_gen: 0,
            expires_at: now() + 60,
        });
        assert!(c.is_revoked(&sid, &sub, 10, 0));
        let other = Uuid::now_v7();
        c.apply(&Revocation {
            kind: RevocationKind::UserBefore,
            id: sub,
            since_ms: 1000,
            min_gen: 0,
            expires_at: now() + 60,
        });
        assert!(c.is_revoked(&other, &sub, 1000, 0));
        assert!(!c.is_revoked(&other, &sub, 1001, 0));
        // A generation cut-off refuses older generations whenever they were signed.
        c.apply(&Revocation {
            kind: RevocationKind::UserBefore,
            id: sub,
            since_ms: 0,
            min_gen: 3,
            expires_at: now() + 60,
        });
        assert!(c.is_revoked(&other, &sub, u64::MAX, 2));
        assert!(!c.is_revoked(&other, &sub, 1001, 3));
        // Already-expired revocations are not kept.
        c.apply(&Revocation {
            kind: RevocationKind::Session,
            id: other,
            since_ms: 0,
            min_gen: 0,
            expires_at: now() - 1,
        });
        assert!(!c.is_revoked(&other, &Uuid::now_v7(), 0, 0));
    }
}
