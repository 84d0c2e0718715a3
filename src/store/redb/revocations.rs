//! Revocations: whole sessions, or a user's tokens issued before a moment or generation.

use super::{Write, all, codec::encode, for_both, tables::*};
use crate::{
    model::Revocation,
    store::ports::{R, RevocationReads, RevocationWrites, revocation_key},
};

for_both! {
    impl RevocationReads {
        fn revocations(&self) -> R<Vec<Revocation>> {
            all(&self.tx.open_table(REVOCATIONS)?)
        }
    }
}

impl RevocationWrites for Write {
    fn put_revocation(&mut self, r: &Revocation) -> R<()> {
        self.tx.open_table(REVOCATIONS)?.insert(revocation_key(r).as_str(), encode(r)?.as_slice())?;
        Ok(())
    }
}
