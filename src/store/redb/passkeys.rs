//! Passkeys, unique by credential id.

use redb::{ReadableMultimapTable as _, ReadableTable as _};
use uuid::Uuid;

use super::{Write, all, codec::encode, for_both, get, tables::*};
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
            get(&self.tx.open_table(PASSKEYS)?, id)
        }

        fn passkey_by_credential(&self, credential_id: &[u8]) -> R<Option<Passkey>> {
            let id = self.tx.open_table(PASSKEY_INDEX)?.get(credential_id)?.map(|g| g.value());
            match id {
                Some(id) => get(&self.tx.open_table(PASSKEYS)?, id),
                None => Ok(None),
            }
        }

        fn passkeys_of(&self, user: Uuid) -> R<Vec<Passkey>> {
            let table = self.tx.open_multimap_table(USER_PASSKEYS)?;
            let passkeys = self.tx.open_table(PASSKEYS)?;
            let mut out = Vec::new();
            for v in table.get(user)? {
                if let Some(p) = get(&passkeys, v?.value())? {
                    out.push(p);
                }
            }
            Ok(out)
        }

        fn all_passkeys(&self) -> R<Vec<Passkey>> {
            all(&self.tx.open_table(PASSKEYS)?)
        }
    }
}

impl PasskeyWrites for Write {
    fn put_passkey(&mut self, p: &Passkey) -> R<()> {
        {
            let mut index = self.tx.open_table(PASSKEY_INDEX)?;
            if index.get(p.credential_id.as_slice())?.is_some_and(|g| g.value() != p.id) {
                return Err(StoreError::Duplicate("passkey"));
            }
            index.insert(p.credential_id.as_slice(), p.id)?;
        }
        self.tx.open_table(PASSKEYS)?.insert(p.id, encode(p)?.as_slice())?;
        self.tx.open_multimap_table(USER_PASSKEYS)?.insert(p.user_id, p.id)?;
        Ok(())
    }

    fn delete_passkey(&mut self, id: Uuid) -> R<bool> {
        let Some(p) = self.passkey(id)? else { return Ok(false) };
        self.tx.open_table(PASSKEY_INDEX)?.remove(p.credential_id.as_slice())?;
        self.tx.open_multimap_table(USER_PASSKEYS)?.remove(p.user_id, p.id)?;
        self.tx.open_table(PASSKEYS)?.remove(id)?;
        Ok(true)
    }
}
