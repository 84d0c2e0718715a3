//! Revocations: whole sessions, or a user's tokens issued before a moment or generation.

use super::{Write, big, for_both, to_doc};
use crate::{
    model::Revocation,
    store::ports::{Change, R, RevocationReads, RevocationWrites, revocation_key},
};

for_both! {
    impl RevocationReads {
        fn revocations(&self) -> R<Vec<Revocation>> {
            self.c.docs("SELECT data FROM revocations ORDER BY key", &[])
        }
    }
}

impl RevocationWrites for Write {
    fn put_revocation(&mut self, r: &Revocation) -> R<()> {
        self.c.execute(
            "INSERT INTO revocations (key, expires_at, data) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, data = EXCLUDED.data",
            &[&revocation_key(r), &big(r.expires_at), &to_doc(r)?],
        )?;
        self.announce(&Change::Revoked(r.clone()))
    }
}
