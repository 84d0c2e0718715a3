//! Users and the unique index of their login names.

use redb::ReadableTable as _;
use uuid::Uuid;

use super::{Write, codec::encode, for_both, get, tables::*};
use crate::{
    model::User,
    store::{
        StoreError,
        ports::{
            IdentityReads as _, IdentityWrites as _, LoginName, PasskeyReads as _, PasskeyWrites as _, R,
            SessionReads as _, SessionWrites as _, UserQuery, UserReads, UserWrites, login_names, login_prefixes,
            user_facets,
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

        fn user_count(&self) -> R<u64> {
            use redb::ReadableTableMetadata as _;
            Ok(self.tx.open_table(USERS)?.len()?)
        }

        fn users_page(&self, q: &UserQuery<'_>, limit: usize) -> R<Vec<User>> {
            let users = self.tx.open_table(USERS)?;
            let after = q.after.unwrap_or(Uuid::nil());
            let mut out = Vec::new();
            let mut take = |id: Uuid| -> R<bool> {
                if let Some(u) = get::<Uuid, User>(&users, id)?
                    && q.matches(&u)
                {
                    out.push(u);
                }
                Ok(out.len() < limit)
            };
            if limit == 0 {
                return Ok(Vec::new());
            }
            if let Some(prefix) = q.prefix {
                // Every name with the prefix, in id order: as many as match, never every user.
                let index = self.tx.open_table(USER_INDEX)?;
                let mut ids = std::collections::BTreeSet::new();
                for start in login_prefixes(prefix) {
                    for row in index.range(start.as_str()..)? {
                        let (k, v) = row?;
                        if !k.value().starts_with(start.as_str()) {
                            break;
                        }
                        if v.value() > after {
                            ids.insert(v.value());
                        }
                    }
                }
                for id in ids {
                    if !take(id)? {
                        break;
                    }
                }
            } else if let Some(facet) = q.role.map(|r| format!("r:{r}")).or(q.status.map(|s| format!("s:{}", s.as_str()))) {
                let index = self.tx.open_table(USER_FACETS)?;
                for row in index.range((facet.as_str(), after)..=(facet.as_str(), Uuid::max()))? {
                    let (k, _) = row?;
                    let (_, id) = k.value();
                    if id != after && !take(id)? {
                        break;
                    }
                }
            } else {
                for row in users.range(after..)? {
                    let (k, _) = row?;
                    if k.value() != after && !take(k.value())? {
                        break;
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Lists a user under its facets (status, roles), or (`add` false) takes it off them.
fn set_facets(tx: &redb::WriteTransaction, user: &User, add: bool) -> R<()> {
    let mut facets = tx.open_table(USER_FACETS)?;
    for f in user_facets(user) {
        if add {
            facets.insert((f.as_str(), user.id), ())?;
        } else {
            facets.remove((f.as_str(), user.id))?;
        }
    }
    Ok(())
}

/// Lists every stored user under its facets (a file written before they existed).
pub(super) fn build_facets(tx: &redb::WriteTransaction) -> R<()> {
    let users: Vec<User> = super::all(&tx.open_table(USERS)?)?;
    for u in &users {
        set_facets(tx, u, true)?;
    }
    Ok(())
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
        set_facets(&self.tx, user, true)
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
        if let Some(old) = &old {
            set_facets(&self.tx, old, false)?;
        }
        self.tx.open_table(USERS)?.insert(user.id, encode(user)?.as_slice())?;
        set_facets(&self.tx, user, true)
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
        for passkey in self.passkeys_of(id)? {
            self.delete_passkey(passkey.id)?;
        }
        set_facets(&self.tx, &user, false)?;
        self.tx.open_table(USERS)?.remove(id)?;
        Ok(sids)
    }
}
