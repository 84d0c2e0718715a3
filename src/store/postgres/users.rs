//! Users and the unique index of their login names.

use uuid::Uuid;

use super::{Lock, Write, for_both, to_doc};
use crate::{
    model::User,
    store::{
        StoreError,
        ports::{Change, LoginName, R, SessionReads as _, SessionWrites as _, UserReads, UserWrites, login_names},
    },
};

for_both! {
    impl UserReads {
        fn user(&self, id: Uuid) -> R<Option<User>> {
            self.c.doc(&format!("SELECT data FROM users WHERE id = $1{}", Self::LOCK), &[&id])
        }

        fn user_by_login(&self, name: LoginName<'_>) -> R<Option<User>> {
            let sql = format!(
                "SELECT u.data FROM user_logins l JOIN users u ON u.id = l.user_id WHERE l.key = $1{}",
                Self::LOCK
            );
            self.c.doc(&sql, &[&name.key()])
        }

        fn users(&self) -> R<Vec<User>> {
            self.c.docs("SELECT data FROM users ORDER BY id", &[])
        }
    }
}

impl Write {
    /// Claims every login name of `user`; the first one someone else holds is a duplicate.
    fn claim_logins(&self, user: &User) -> R<()> {
        for name in login_names(user) {
            let claimed = self.c.execute(
                "INSERT INTO user_logins (key, user_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&name.key(), &user.id],
            )?;
            if claimed == 0 {
                return Err(StoreError::Duplicate(name.field()));
            }
        }
        Ok(())
    }
}

impl UserWrites for Write {
    fn insert_user(&mut self, user: &User) -> R<()> {
        self.c.execute("INSERT INTO users (id, data) VALUES ($1, $2)", &[&user.id, &to_doc(user)?])?;
        self.claim_logins(user)
    }

    fn update_user(&mut self, user: &User) -> R<()> {
        self.c.execute(
            "INSERT INTO users (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
            &[&user.id, &to_doc(user)?],
        )?;
        self.c.execute("DELETE FROM user_logins WHERE user_id = $1", &[&user.id])?;
        self.claim_logins(user)?;
        self.announce(&Change::User(user.id))
    }

    fn delete_user(&mut self, id: Uuid) -> R<Vec<Uuid>> {
        if self.user(id)?.is_none() {
            return Ok(Vec::new());
        }
        let sids = self.session_ids_of(id)?;
        for sid in &sids {
            self.delete_session(*sid)?;
        }
        self.c.execute("DELETE FROM users WHERE id = $1", &[&id])?;
        self.announce(&Change::User(id))?;
        Ok(sids)
    }
}
