//! Single-use secrets, by id and by the hash of their long token.

use redb::ReadableTable as _;

use super::{
    Write, all,
    codec::{decode, encode},
    for_both, get,
    tables::*,
};
use uuid::Uuid;

use crate::{
    model::{OneTimeSecret, Purpose, UnixTime},
    store::ports::{OneTimeReads, OneTimeWrites, R},
};

for_both! {
    impl OneTimeReads {
        fn one_time(&self, id: &str) -> R<Option<OneTimeSecret>> {
            get(&self.tx.open_table(ONE_TIME)?, id)
        }

        fn one_time_by_token(&self, hash: &[u8]) -> R<Option<OneTimeSecret>> {
            let id = self.tx.open_table(ONE_TIME_TOKENS)?.get(hash)?.map(|g| g.value().to_owned());
            match id {
                Some(id) => get(&self.tx.open_table(ONE_TIME)?, id.as_str()),
                None => Ok(None),
            }
        }

        fn one_time_secrets(&self) -> R<Vec<OneTimeSecret>> {
            all(&self.tx.open_table(ONE_TIME)?)
        }

        // A scan: secrets are few and short-lived (pruned once expired).
        fn one_time_for_target(&self, purpose: Purpose, target: &str) -> R<Vec<OneTimeSecret>> {
            let all: Vec<OneTimeSecret> = all(&self.tx.open_table(ONE_TIME)?)?;
            Ok(all.into_iter().filter(|s| s.purpose == purpose && s.target.as_deref() == Some(target)).collect())
        }
    }
}

impl OneTimeWrites for Write {
    fn put_one_time(&mut self, s: &OneTimeSecret) -> R<()> {
        self.delete_one_time(&s.id)?;
        self.tx.open_table(ONE_TIME)?.insert(s.id.as_str(), encode(s)?.as_slice())?;
        if let Some(h) = &s.token_hash {
            self.tx.open_table(ONE_TIME_TOKENS)?.insert(h.as_slice(), s.id.as_str())?;
        }
        Ok(())
    }

    fn claim_one_time(&mut self, s: &OneTimeSecret) -> R<bool> {
        // One writer at a time: reading then writing in this transaction is atomic.
        let existing: Option<OneTimeSecret> = get(&self.tx.open_table(ONE_TIME)?, s.id.as_str())?;
        if existing.is_some() {
            return Ok(false);
        }
        self.put_one_time(s)?;
        Ok(true)
    }

    fn delete_one_time(&mut self, id: &str) -> R<bool> {
        let old: Option<OneTimeSecret> = get(&self.tx.open_table(ONE_TIME)?, id)?;
        let Some(old) = old else { return Ok(false) };
        self.tx.open_table(ONE_TIME)?.remove(id)?;
        if let Some(h) = &old.token_hash {
            self.tx.open_table(ONE_TIME_TOKENS)?.remove(h.as_slice())?;
        }
        Ok(true)
    }

    fn delete_one_time_of(&mut self, user: Uuid, purposes: &[Purpose]) -> R<usize> {
        let all: Vec<OneTimeSecret> = all(&self.tx.open_table(ONE_TIME)?)?;
        let mine: Vec<String> = all
            .into_iter()
            .filter(|s| s.user_id == Some(user) && purposes.contains(&s.purpose))
            .map(|s| s.id)
            .collect();
        for id in &mine {
            self.delete_one_time(id)?;
        }
        Ok(mine.len())
    }

    fn prune_one_time(&mut self, now: UnixTime) -> R<usize> {
        let mut stale = Vec::new();
        for row in self.tx.open_table(ONE_TIME)?.iter()? {
            let (k, v) = row?;
            if decode::<OneTimeSecret>(v.value()).is_ok_and(|s| s.expires_at <= now) {
                stale.push(k.value().to_owned());
            }
        }
        for id in &stale {
            self.delete_one_time(id)?;
        }
        Ok(stale.len())
    }
}
