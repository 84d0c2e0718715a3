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

        fn secret(&self, name: &str) -> R<Option<Vec<u8>>> {
            let rows = self.c.rows("SELECT value FROM secrets WHERE name = $1", &[&name])?;
            Ok(rows.first().map(|r| r.get(0)))
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

    fn ensure_secret(&mut self, name: &str, value: &[u8]) -> R<Vec<u8>> {
        self.c.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &value],
        )?;
        let row = self.c.one("SELECT value FROM secrets WHERE name = $1", &[&name])?;
        Ok(row.get(0))
    }
}
