//! Sessions, the refresh-token hashes that lead to them, and pruning what has expired.

use uuid::Uuid;

use super::{Lock, Write, big, count, for_both, from_doc, to_doc};
use crate::{
    model::{RefreshRecord, Session, UnixTime},
    store::ports::{R, SessionReads, SessionWrites},
};

for_both! {
    impl SessionReads {
        fn session(&self, id: Uuid) -> R<Option<Session>> {
            self.c.doc(&format!("SELECT data FROM sessions WHERE id = $1{}", Self::LOCK), &[&id])
        }

        fn session_count(&self) -> R<u64> {
            // The planner's estimate past 100,000 rows, where counting would read them all.
            let row = self.c.one(
                "SELECT CASE WHEN c.reltuples > 100000 THEN c.reltuples::bigint \
                 ELSE (SELECT count(*) FROM sessions) END FROM pg_class c WHERE c.oid = 'sessions'::regclass",
                &[],
            )?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        }

        fn session_ids_of(&self, user: Uuid) -> R<Vec<Uuid>> {
            let rows = self.c.rows("SELECT id FROM sessions WHERE user_id = $1 ORDER BY id", &[&user])?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        }

        fn sessions_of(&self, user: Uuid) -> R<Vec<Session>> {
            self.c.docs("SELECT data FROM sessions WHERE user_id = $1 ORDER BY id", &[&user])
        }

        fn refresh(&self, hash: &[u8]) -> R<Option<RefreshRecord>> {
            self.c.doc(&format!("SELECT data FROM refresh_tokens WHERE hash = $1{}", Self::LOCK), &[&hash])
        }

        fn all_sessions(&self) -> R<Vec<Session>> {
            self.c.docs("SELECT data FROM sessions ORDER BY id", &[])
        }

        fn all_refresh(&self) -> R<Vec<(Vec<u8>, RefreshRecord)>> {
            let rows = self.c.rows("SELECT hash, data FROM refresh_tokens ORDER BY hash", &[])?;
            rows.iter().map(|r| Ok((r.get::<_, Vec<u8>>(0), from_doc(r.get(1))?))).collect()
        }
    }
}

impl SessionWrites for Write {
    fn put_session(&mut self, s: &Session) -> R<()> {
        let expires = big(s.expires_at.min(s.absolute_expires_at));
        self.c.execute(
            "INSERT INTO sessions (id, user_id, expires_at, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, expires_at = EXCLUDED.expires_at, \
             data = EXCLUDED.data",
            &[&s.id, &s.user_id, &expires, &to_doc(s)?],
        )?;
        Ok(())
    }

    fn delete_session(&mut self, id: Uuid) -> R<Option<Session>> {
        let rows = self.c.rows("DELETE FROM sessions WHERE id = $1 RETURNING data", &[&id])?;
        rows.into_iter().next().map(|r| from_doc(r.get(0))).transpose()
    }

    fn put_refresh(&mut self, hash: &[u8], rec: &RefreshRecord) -> R<()> {
        self.c.execute(
            "INSERT INTO refresh_tokens (hash, expires_at, data) VALUES ($1, $2, $3) \
             ON CONFLICT (hash) DO UPDATE SET expires_at = EXCLUDED.expires_at, data = EXCLUDED.data",
            &[&hash, &big(rec.expires_at), &to_doc(rec)?],
        )?;
        Ok(())
    }

    fn prune(&mut self, now: UnixTime) -> R<usize> {
        let now = big(now);
        let mut removed = 0;
        for table in ["refresh_tokens", "revocations", "sessions"] {
            removed += count(self.c.execute(&format!("DELETE FROM {table} WHERE expires_at <= $1"), &[&now])?);
        }
        Ok(removed)
    }
}
