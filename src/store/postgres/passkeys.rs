//! Passkeys, unique by credential id.

use uuid::Uuid;

use super::{Lock, Write, for_both, to_doc};
use crate::{
    model::Passkey,
    store::{
        StoreError,
        ports::{PasskeyReads, PasskeyWrites, R},
    },
};

for_both! {
    impl PasskeyReads {
        fn passkey(&self, id: Uuid) -> R<Option<Passkey>> {
            self.c.doc(&format!("SELECT data FROM passkeys WHERE id = $1{}", Self::LOCK), &[&id])
        }

        fn passkey_by_credential(&self, credential_id: &[u8]) -> R<Option<Passkey>> {
            let sql = format!("SELECT data FROM passkeys WHERE credential_id = $1{}", Self::LOCK);
            self.c.doc(&sql, &[&credential_id])
        }

        fn passkeys_of(&self, user: Uuid) -> R<Vec<Passkey>> {
            self.c.docs("SELECT data FROM passkeys WHERE user_id = $1 ORDER BY id", &[&user])
        }

        fn all_passkeys(&self) -> R<Vec<Passkey>> {
            self.c.docs("SELECT data FROM passkeys ORDER BY id", &[])
        }
    }
}

impl PasskeyWrites for Write {
    fn put_passkey(&mut self, p: &Passkey) -> R<()> {
        let doc = to_doc(p)?;
        // Any conflict (the id, or the credential) inserts nothing and leaves the transaction
        // usable.
        let inserted = self.c.execute(
            "INSERT INTO passkeys (id, user_id, credential_id, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&p.id, &p.user_id, &p.credential_id, &doc],
        )?;
        if inserted > 0 {
            return Ok(());
        }
        let updated = self.c.execute(
            "UPDATE passkeys SET data = $3 WHERE id = $1 AND credential_id = $2",
            &[&p.id, &p.credential_id, &doc],
        )?;
        if updated == 0 {
            return Err(StoreError::Duplicate("passkey"));
        }
        Ok(())
    }

    fn delete_passkey(&mut self, id: Uuid) -> R<bool> {
        Ok(self.c.execute("DELETE FROM passkeys WHERE id = $1", &[&id])? > 0)
    }
}
