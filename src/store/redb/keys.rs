//! Token signing keys.

use redb::ReadableTable as _;

use super::{Write, all, codec::encode, for_both, tables::*};
use crate::{
    model::SigningKeyRecord,
    store::ports::{KeyReads, KeyWrites, R},
};

for_both! {
    impl KeyReads {
        fn signing_keys(&self) -> R<Vec<SigningKeyRecord>> {
            all(&self.tx.open_table(SIGNING_KEYS)?)
        }

        fn secret(&self, name: &str) -> R<Option<Vec<u8>>> {
            Ok(self.tx.open_table(SECRETS)?.get(name)?.map(|g| g.value().to_vec()))
        }
    }
}

impl KeyWrites for Write {
    fn put_signing_key(&mut self, k: &SigningKeyRecord) -> R<()> {
        self.tx.open_table(SIGNING_KEYS)?.insert(k.kid.as_str(), encode(k)?.as_slice())?;
        Ok(())
    }

    fn ensure_secret(&mut self, name: &str, value: &[u8]) -> R<Vec<u8>> {
        if let Some(existing) = self.secret(name)? {
            return Ok(existing);
        }
        self.tx.open_table(SECRETS)?.insert(name, value)?;
        Ok(value.to_vec())
    }
}
