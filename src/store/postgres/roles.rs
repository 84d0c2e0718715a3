//! Roles and their permissions.

use super::{Write, for_both, to_doc};
use crate::{
    model::Role,
    store::ports::{Change, R, RoleReads, RoleWrites},
};

for_both! {
    impl RoleReads {
        fn roles(&self) -> R<Vec<Role>> {
            self.c.docs("SELECT data FROM roles ORDER BY name", &[])
        }
    }
}

impl RoleWrites for Write {
    fn put_role(&mut self, r: &Role) -> R<()> {
        self.c.execute(
            "INSERT INTO roles (name, data) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data",
            &[&r.name, &to_doc(r)?],
        )?;
        self.announce(&Change::Roles)
    }

    fn delete_role(&mut self, name: &str) -> R<()> {
        self.c.execute("DELETE FROM roles WHERE name = $1", &[&name])?;
        self.announce(&Change::Roles)
    }
}
