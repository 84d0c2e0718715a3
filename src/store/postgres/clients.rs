//! Clients.

use uuid::Uuid;

use super::{Lock, Write, for_both, to_doc};
use crate::{
    model::Client,
    store::ports::{Change, ClientReads, ClientWrites, R},
};

for_both! {
    impl ClientReads {
        fn client(&self, id: Uuid) -> R<Option<Client>> {
            self.c.doc(&format!("SELECT data FROM clients WHERE id = $1{}", Self::LOCK), &[&id])
        }

        fn clients(&self) -> R<Vec<Client>> {
            self.c.docs("SELECT data FROM clients ORDER BY id", &[])
        }
    }
}

impl ClientWrites for Write {
    fn put_client(&mut self, c: &Client) -> R<()> {
        self.c.execute(
            "INSERT INTO clients (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
            &[&c.id, &to_doc(c)?],
        )?;
        self.announce(&Change::Client(c.id))
    }

    fn delete_client(&mut self, id: Uuid) -> R<bool> {
        let deleted = self.c.execute("DELETE FROM clients WHERE id = $1", &[&id])? > 0;
        self.announce(&Change::Client(id))?;
        Ok(deleted)
    }
}
