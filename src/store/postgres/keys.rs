//! Token signing keys.

use super::{Write, for_both, to_doc};
use crate::{
    model::SigningKeyRecord,
    store::ports::{Change, KeyReads, KeyWrites, R},
};

for_both! {
    impl KeyReads {
        fn signing_keys(&self) -> R<Vec<SigningKeyRecord>> {
            self.c.docs("SELECT data FROM signing_keys ORDER BY kid", &[])
        }
    }
}

impl KeyWrites for Write {
    fn put_signing_key(&mut self, k: &SigningKeyRecord) -> R<()> {
        self.c.execute(
            "INSERT INTO signing_keys (kid, data) VALUES ($1, $2) ON CONFLICT (kid) DO UPDATE SET data = EXCLUDED.data",
            &[&k.kid, &to_doc(k)?],
        )?;
        self.announce(&Change::Keys)
    }
}
