//! Single-use secrets, by id and by the hash of their long token.

use super::{Lock, Write, big, count, for_both, to_doc};
use uuid::Uuid;

use crate::{
    model::{OneTimeSecret, Purpose, UnixTime},
    store::ports::{OneTimeReads, OneTimeWrites, R},
};

for_both! {
    impl OneTimeReads {
        fn one_time(&self, id: &str) -> R<Option<OneTimeSecret>> {
            self.c.doc(&format!("SELECT data FROM one_time_secrets WHERE id = $1{}", Self::LOCK), &[&id])
        }

        fn one_time_by_token(&self, hash: &[u8]) -> R<Option<OneTimeSecret>> {
            self.c.doc(&format!("SELECT data FROM one_time_secrets WHERE token_hash = $1{}", Self::LOCK), &[&hash])
        }

        fn one_time_secrets(&self) -> R<Vec<OneTimeSecret>> {
            self.c.docs("SELECT data FROM one_time_secrets ORDER BY id", &[])
        }

        fn one_time_for_target(&self, purpose: Purpose, target: &str) -> R<Vec<OneTimeSecret>> {
            self.c.docs(
                &format!(
                    "SELECT data FROM one_time_secrets WHERE data->>'target' = $1 AND data->>'purpose' = $2 \
                     ORDER BY id{}",
                    Self::LOCK
                ),
                &[&target, &purpose.as_str()],
            )
        }
    }
}

impl OneTimeWrites for Write {
    fn put_one_time(&mut self, s: &OneTimeSecret) -> R<()> {
        self.c.execute(
            "INSERT INTO one_time_secrets (id, token_hash, expires_at, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET token_hash = EXCLUDED.token_hash, expires_at = EXCLUDED.expires_at, \
             data = EXCLUDED.data",
            &[&s.id, &s.token_hash, &big(s.expires_at), &to_doc(s)?],
        )?;
        Ok(())
    }

    fn claim_one_time(&mut self, s: &OneTimeSecret) -> R<bool> {
        // A concurrent claim of the same id waits on the row, then inserts nothing.
        let added = self.c.execute(
            "INSERT INTO one_time_secrets (id, token_hash, expires_at, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
            &[&s.id, &s.token_hash, &big(s.expires_at), &to_doc(s)?],
        )?;
        Ok(added == 1)
    }

    fn delete_one_time(&mut self, id: &str) -> R<bool> {
        Ok(self.c.execute("DELETE FROM one_time_secrets WHERE id = $1", &[&id])? > 0)
    }

    fn delete_one_time_of(&mut self, user: Uuid, purposes: &[Purpose]) -> R<usize> {
        let names: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
        Ok(count(self.c.execute(
            "DELETE FROM one_time_secrets WHERE data->>'user_id' = $1 AND data->>'purpose' = ANY($2)",
            &[&user.to_string(), &names],
        )?))
    }

    fn prune_one_time(&mut self, now: UnixTime) -> R<usize> {
        Ok(count(self.c.execute("DELETE FROM one_time_secrets WHERE expires_at <= $1", &[&big(now)])?))
    }
}
