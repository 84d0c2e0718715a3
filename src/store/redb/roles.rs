//! Roles and their permissions.

use super::{Write, all, codec::encode, for_both, tables::*};
use crate::{
    model::Role,
    store::ports::{R, RoleReads, RoleWrites},
};

for_both! {
    impl RoleReads {
        fn roles(&self) -> R<Vec<Role>> {
            all(&self.tx.open_table(ROLES)?)
        }
    }
}

impl RoleWrites for Write {
    fn put_role(&mut self, r: &Role) -> R<()> {
        self.tx.open_table(ROLES)?.insert(r.name.as_str(), encode(r)?.as_slice())?;
        Ok(())
    }

    fn delete_role(&mut self, name: &str) -> R<()> {
        self.tx.open_table(ROLES)?.remove(name)?;
        Ok(())
    }
}
