//! Sessions, the refresh-token hashes that lead to them, and pruning what has expired.

use redb::{ReadableMultimapTable as _, ReadableTable as _};
use uuid::Uuid;

use super::{
    Write,
    codec::{decode, encode},
    for_both, get,
    tables::*,
};
use crate::{
    model::{RefreshRecord, Revocation, Session, UnixTime},
    store::ports::{R, SessionReads, SessionWrites},
};

for_both! {
    impl SessionReads {
        fn session(&self, id: Uuid) -> R<Option<Session>> {
            get(&self.tx.open_table(SESSIONS)?, id)
        }

        fn session_count(&self) -> R<u64> {
            use redb::ReadableTableMetadata as _;
            Ok(self.tx.open_table(SESSIONS)?.len()?)
        }

        fn session_ids_of(&self, user: Uuid) -> R<Vec<Uuid>> {
            let table = self.tx.open_multimap_table(USER_SESSIONS)?;
            let mut ids = Vec::new();
            for v in table.get(user)? {
                ids.push(v?.value());
            }
            Ok(ids)
        }

        fn sessions_of(&self, user: Uuid) -> R<Vec<Session>> {
            let sessions = self.tx.open_table(SESSIONS)?;
            let mut out = Vec::new();
            for id in self.session_ids_of(user)? {
                if let Some(s) = get(&sessions, id)? {
                    out.push(s);
                }
            }
            Ok(out)
        }

        // redb has one writer at a time: a read in a write transaction is already exclusive.
        fn refresh(&self, hash: &[u8]) -> R<Option<RefreshRecord>> {
            get(&self.tx.open_table(REFRESH_TOKENS)?, hash)
        }

        fn all_sessions(&self) -> R<Vec<Session>> {
            super::all(&self.tx.open_table(SESSIONS)?)
        }

        fn all_refresh(&self) -> R<Vec<(Vec<u8>, RefreshRecord)>> {
            let mut out = Vec::new();
            for row in self.tx.open_table(REFRESH_TOKENS)?.iter()? {
                let (k, v) = row?;
                out.push((k.value().to_vec(), decode(v.value())?));
            }
            Ok(out)
        }
    }
}

impl SessionWrites for Write {
    fn put_session(&mut self, s: &Session) -> R<()> {
        self.tx.open_table(SESSIONS)?.insert(s.id, encode(s)?.as_slice())?;
        self.tx.open_multimap_table(USER_SESSIONS)?.insert(s.user_id, s.id)?;
        Ok(())
    }

    fn delete_session(&mut self, id: Uuid) -> R<Option<Session>> {
        let removed: Option<Session> = match self.tx.open_table(SESSIONS)?.remove(id)? {
            Some(g) => Some(decode(g.value())?),
            None => None,
        };
        if let Some(s) = &removed {
            self.tx.open_multimap_table(USER_SESSIONS)?.remove(s.user_id, s.id)?;
        }
        Ok(removed)
    }

    fn put_refresh(&mut self, hash: &[u8], rec: &RefreshRecord) -> R<()> {
        self.tx.open_table(REFRESH_TOKENS)?.insert(hash, encode(rec)?.as_slice())?;
        Ok(())
    }

    fn prune(&mut self, now: UnixTime) -> R<usize> {
        let mut removed = 0;
        {
            let mut t = self.tx.open_table(REFRESH_TOKENS)?;
            t.retain(|_, v| {
                let keep = decode::<RefreshRecord>(v).is_ok_and(|r| r.expires_at > now);
                removed += usize::from(!keep);
                keep
            })?;
        }
        {
            let mut t = self.tx.open_table(REVOCATIONS)?;
            t.retain(|_, v| {
                let keep = decode::<Revocation>(v).is_ok_and(|r| r.expires_at > now);
                removed += usize::from(!keep);
                keep
            })?;
        }
        let stale: Vec<Uuid> = {
            let t = self.tx.open_table(SESSIONS)?;
            let mut ids = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                if let Ok(s) = decode::<Session>(v.value())
                    && s.expires_at.min(s.absolute_expires_at) <= now
                {
                    ids.push(k.value());
                }
            }
            ids
        };
        for id in stale {
            self.delete_session(id)?;
            removed += 1;
        }
        Ok(removed)
    }
}
