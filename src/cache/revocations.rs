//! In-memory revocation state, consulted on every authenticated request so that the check never
//! touches the disk. Each entry expires when the tokens it guards would have expired anyway.
//!
//! These caches are deliberately not size-capped: evicting a live revocation would bring a
//! revoked token back. Their size is bounded by time instead (entries live at most one access
//! token lifetime plus leeway).

use std::{
    collections::HashMap,
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use uuid::Uuid;

use crate::model::{Revocation, RevocationKind, UnixTime, now};

/// A user's cut-off: tokens minted up to `since_ms`, or from a generation below `min_gen`.
#[derive(Clone, Copy)]
struct Cutoff {
    since_ms: u64,
    min_gen: u64,
    expires_at: UnixTime,
}

/// Plain maps under a lock rather than a cache: every logout adds a session entry, and at
/// 24 bytes each (its id and expiry) a storm of them stays small (a general-purpose cache
/// spends hundreds per entry). Reads take the lock shared.
#[derive(Default)]
pub struct RevocationCache {
    sessions: RwLock<HashMap<Uuid, UnixTime>>,
    users: RwLock<HashMap<Uuid, Cutoff>>,
}

fn read<V>(m: &RwLock<HashMap<Uuid, V>>) -> RwLockReadGuard<'_, HashMap<Uuid, V>> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<V>(m: &RwLock<HashMap<Uuid, V>>) -> RwLockWriteGuard<'_, HashMap<Uuid, V>> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// Drops the entries `expiry` puts at or before `now`, and gives back the room of a burst.
fn sweep_map<V>(map: &RwLock<HashMap<Uuid, V>>, now: UnixTime, expiry: impl Fn(&V) -> UnixTime) {
    let mut m = write(map);
    m.retain(|_, v| expiry(v) > now);
    if m.capacity() > 64 && m.len() < m.capacity() / 4 {
        m.shrink_to_fit();
    }
}

impl RevocationCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops what has expired (the tokens it guarded have expired too), and gives back the
    /// room a burst of logouts took.
    pub fn sweep(&self) {
        self.sweep_at(now());
    }

    fn sweep_at(&self, now: UnixTime) {
        sweep_map(&self.sessions, now, |expires_at| *expires_at);
        sweep_map(&self.users, now, |cutoff| cutoff.expires_at);
    }

    /// Revocations held in memory (sessions, users).
    pub fn len(&self) -> (u64, u64) {
        (read(&self.sessions).len() as u64, read(&self.users).len() as u64)
    }

    pub fn apply(&self, r: &Revocation) {
        if r.expires_at <= now() {
            return;
        }
        match r.kind {
            RevocationKind::Session => {
                let mut m = write(&self.sessions);
                let kept = m.entry(r.id).or_insert(r.expires_at);
                *kept = (*kept).max(r.expires_at);
            }
            RevocationKind::UserBefore => {
                // A later cut-off supersedes an earlier one.
                let cutoff = Cutoff { since_ms: r.since_ms, min_gen: r.min_gen, expires_at: r.expires_at };
                write(&self.users)
                    .entry(r.id)
                    .and_modify(|old| {
                        old.since_ms = old.since_ms.max(cutoff.since_ms);
                        old.min_gen = old.min_gen.max(cutoff.min_gen);
                        old.expires_at = old.expires_at.max(cutoff.expires_at);
                    })
                    .or_insert(cutoff);
            }
        }
    }

    /// Is a token of session `sid` for user `sub`, minted at `issued_ms` from authorization
    /// generation `gen`, revoked? A user cut-off covers tokens minted up to and including its
    /// millisecond, and every token of an older generation whenever it was signed.
    pub fn is_revoked(&self, sid: &Uuid, sub: &Uuid, issued_ms: u64, generation: u64) -> bool {
        if read(&self.sessions).contains_key(sid) {
            return true;
        }
        read(&self.users).get(sub).is_some_and(|e| issued_ms <= e.since_ms || generation < e.min_gen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: Uuid, expires_at: UnixTime) -> Revocation {
        Revocation { kind: RevocationKind::Session, id, since_ms: 0, min_gen: 0, expires_at }
    }

    #[test]
    fn expired_revocations_leave_and_give_their_room_back() {
        let c = RevocationCache::new();
        let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
        for id in &ids {
            c.apply(&session(*id, now() + 10));
        }
        let live = Uuid::now_v7();
        c.apply(&session(live, now() + 100));
        assert_eq!(c.len(), (1001, 0));
        let room = read(&c.sessions).capacity();
        c.sweep_at(now() + 20);
        assert_eq!(c.len(), (1, 0));
        assert!(read(&c.sessions).capacity() < room / 10, "the room of a burst is given back");
        assert!(c.is_revoked(&live, &Uuid::now_v7(), 0, 0));
        assert!(!c.is_revoked(&ids[0], &Uuid::now_v7(), 0, 0));
        // Applying a session twice keeps the later expiry.
        c.apply(&session(live, now() + 5));
        c.sweep_at(now() + 50);
        assert!(c.is_revoked(&live, &Uuid::now_v7(), 0, 0));
    }

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
