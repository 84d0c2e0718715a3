//! Users and the unique index of their login names.

use redb::ReadableTable as _;
use uuid::Uuid;

use super::{Write, codec::encode, for_both, get, tables::*};
use crate::{
    model::User,
    store::{
        StoreError,
        ports::{
            IdentityReads as _, IdentityWrites as _, LoginName, R, SessionReads as _, SessionWrites as _, UserReads,
            UserWrites, login_names,
        },
    },
};

for_both! {
    impl UserReads {
        fn user(&self, id: Uuid) -> R<Option<User>> {
            get(&self.tx.open_table(USERS)?, id)
        }

        fn user_by_login(&self, name: LoginName<'_>) -> R<Option<User>> {
            let id = self.tx.open_table(USER_INDEX)?.get(name.key().as_str())?.map(|g| g.value());
            match id {
                Some(id) => self.user(id),
                None => Ok(None),
            }
        }

        fn users(&self) -> R<Vec<User>> {
            super::all(&self.tx.open_table(USERS)?)
        }
    }
}

impl UserWrites for Write {
    fn insert_user(&mut self, user: &User) -> R<()> {
        {
            let mut index = self.tx.open_table(USER_INDEX)?;
            for name in login_names(user) {
                let key = name.key();
                if index.get(key.as_str())?.is_some() {
                    return Err(StoreError::Duplicate(name.field()));
                }
                index.insert(key.as_str(), user.id)?;
            }
        }
        self.tx.open_table(USERS)?.insert(user.id, encode(user)?.as_slice())?;
        Ok(())
    }

    fn update_user(&mut self, user: &User) -> R<()> {
        let old = self.user(user.id)?;
        {
            let mut index = self.tx.open_table(USER_INDEX)?;
            if let Some(old) = &old {
                for name in login_names(old) {
                    index.remove(name.key().as_str())?;
                }
            }
            for name in login_names(user) {
                let key = name.key();
                if index.get(key.as_str())?.is_some_and(|g| g.value() != user.id) {
                    return Err(StoreError::Duplicate(name.field()));
                }
                index.insert(key.as_str(), user.id)?;
            }
        }
        self.tx.open_table(USERS)?.insert(user.id, encode(user)?.as_slice())?;
        Ok(())
    }

    fn delete_user(&mut self, id: Uuid) -> R<Vec<Uuid>> {
        let Some(user) = self.user(id)? else {
            return Ok(Vec::new());
        };
        {
            let mut index = self.tx.open_table(USER_INDEX)?;
            for name in login_names(&user) {
                index.remove(name.key().as_str())?;
            }
        }
        let sids = self.session_ids_of(id)?;
        for sid in &sids {
            self.delete_session(*sid)?;
        }
        for identity in self.identities_of(id)? {
            self.delete_identity(identity.id)?;
        }
        self.tx.open_table(USERS)?.remove(id)?;
        Ok(sids)
    }
}
