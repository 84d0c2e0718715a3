//! Service clients.

use uuid::Uuid;

use super::{Write, all, codec::encode, for_both, get, tables::*};
use crate::{
    model::Client,
    store::ports::{ClientReads, ClientWrites, R},
};

for_both! {
    impl ClientReads {
        fn client(&self, id: Uuid) -> R<Option<Client>> {
            get(&self.tx.open_table(CLIENTS)?, id)
        }

        fn clients(&self) -> R<Vec<Client>> {
            all(&self.tx.open_table(CLIENTS)?)
        }
    }
}

impl ClientWrites for Write {
    fn put_client(&mut self, c: &Client) -> R<()> {
        self.tx.open_table(CLIENTS)?.insert(c.id, encode(c)?.as_slice())?;
        Ok(())
    }

    fn delete_client(&mut self, id: Uuid) -> R<bool> {
        Ok(self.tx.open_table(CLIENTS)?.remove(id)?.is_some())
    }
}
