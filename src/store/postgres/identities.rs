//! External identities linked to users, unique by `(provider, subject)`.

use uuid::Uuid;

use super::{Lock, Write, for_both, to_doc};
use crate::{
    model::Identity,
    store::{
        StoreError,
        ports::{IdentityReads, IdentityWrites, R},
    },
};

for_both! {
    impl IdentityReads {
        fn identity(&self, provider: &str, subject: &str) -> R<Option<Identity>> {
            let sql = format!("SELECT data FROM identities WHERE provider = $1 AND subject = $2{}", Self::LOCK);
            self.c.doc(&sql, &[&provider, &subject])
        }

        fn identity_by_id(&self, id: Uuid) -> R<Option<Identity>> {
            self.c.doc(&format!("SELECT data FROM identities WHERE id = $1{}", Self::LOCK), &[&id])
        }

        fn identities_of(&self, user: Uuid) -> R<Vec<Identity>> {
            self.c.docs("SELECT data FROM identities WHERE user_id = $1 ORDER BY id", &[&user])
        }

        fn all_identities(&self) -> R<Vec<Identity>> {
            self.c.docs("SELECT data FROM identities ORDER BY id", &[])
        }
    }
}

impl IdentityWrites for Write {
    fn put_identity(&mut self, i: &Identity) -> R<()> {
        let doc = to_doc(i)?;
        // Any conflict (the id, or the provider's account) inserts nothing and leaves the
        // transaction usable.
        let inserted = self.c.execute(
            "INSERT INTO identities (id, user_id, provider, subject, data) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
            &[&i.id, &i.user_id, &i.provider, &i.subject, &doc],
        )?;
        if inserted > 0 {
            return Ok(());
        }
        let updated = self.c.execute(
            "UPDATE identities SET data = $4 WHERE id = $1 AND provider = $2 AND subject = $3",
            &[&i.id, &i.provider, &i.subject, &doc],
        )?;
        if updated == 0 {
            return Err(StoreError::Duplicate("identity"));
        }
        Ok(())
    }

    fn delete_identity(&mut self, id: Uuid) -> R<bool> {
        Ok(self.c.execute("DELETE FROM identities WHERE id = $1", &[&id])? > 0)
    }
}
