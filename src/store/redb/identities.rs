//! External identities linked to users, unique by `(provider, subject)`.

use redb::{ReadableMultimapTable as _, ReadableTable as _};
use uuid::Uuid;

use super::{Write, all, codec::encode, for_both, get, tables::*};
use crate::{
    model::Identity,
    store::{
        StoreError,
        ports::{IdentityReads, IdentityWrites, R},
    },
};

fn index_key(provider: &str, subject: &str) -> String {
    format!("{provider}\0{subject}")
}

for_both! {
    impl IdentityReads {
        fn identity(&self, provider: &str, subject: &str) -> R<Option<Identity>> {
            let id = self.tx.open_table(IDENTITY_INDEX)?.get(index_key(provider, subject).as_str())?.map(|g| g.value());
            match id {
                Some(id) => get(&self.tx.open_table(IDENTITIES)?, id),
                None => Ok(None),
            }
        }

        fn identity_by_id(&self, id: Uuid) -> R<Option<Identity>> {
            get(&self.tx.open_table(IDENTITIES)?, id)
        }

        fn identities_of(&self, user: Uuid) -> R<Vec<Identity>> {
            let table = self.tx.open_multimap_table(USER_IDENTITIES)?;
            let identities = self.tx.open_table(IDENTITIES)?;
            let mut out = Vec::new();
            for v in table.get(user)? {
                if let Some(i) = get(&identities, v?.value())? {
                    out.push(i);
                }
            }
            Ok(out)
        }

        fn all_identities(&self) -> R<Vec<Identity>> {
            all(&self.tx.open_table(IDENTITIES)?)
        }
    }
}

impl IdentityWrites for Write {
    fn put_identity(&mut self, i: &Identity) -> R<()> {
        let key = index_key(&i.provider, &i.subject);
        {
            let mut index = self.tx.open_table(IDENTITY_INDEX)?;
            if index.get(key.as_str())?.is_some_and(|g| g.value() != i.id) {
                return Err(StoreError::Duplicate("identity"));
            }
            index.insert(key.as_str(), i.id)?;
        }
        self.tx.open_table(IDENTITIES)?.insert(i.id, encode(i)?.as_slice())?;
        self.tx.open_multimap_table(USER_IDENTITIES)?.insert(i.user_id, i.id)?;
        Ok(())
    }

    fn delete_identity(&mut self, id: Uuid) -> R<bool> {
        let Some(i) = self.identity_by_id(id)? else { return Ok(false) };
        self.tx.open_table(IDENTITY_INDEX)?.remove(index_key(&i.provider, &i.subject).as_str())?;
        self.tx.open_multimap_table(USER_IDENTITIES)?.remove(i.user_id, i.id)?;
        self.tx.open_table(IDENTITIES)?.remove(id)?;
        Ok(true)
    }
}
