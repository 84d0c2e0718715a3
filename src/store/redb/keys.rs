//! Token signing keys.

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
    }
}

impl KeyWrites for Write {
    fn put_signing_key(&mut self, k: &SigningKeyRecord) -> R<()> {
        self.tx.open_table(SIGNING_KEYS)?.insert(k.kid.as_str(), encode(k)?.as_slice())?;
        Ok(())
    }
}
