//! Users and the unique index of their login names.

use uuid::Uuid;

use super::{Lock, Write, for_both, to_doc};
use crate::{
    model::User,
    store::{
        StoreError,
        ports::{
            Change, LoginName, R, SessionReads as _, SessionWrites as _, UserQuery, UserReads, UserWrites, login_names,
            login_prefixes,
        },
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

        fn user_count(&self) -> R<u64> {
            // The planner's estimate past 100,000 rows, where counting would read them all.
            let row = self.c.one(
                "SELECT CASE WHEN c.reltuples > 100000 THEN c.reltuples::bigint \
                 ELSE (SELECT count(*) FROM users) END FROM pg_class c WHERE c.oid = 'users'::regclass",
                &[],
            )?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        }

        fn users_page(&self, q: &UserQuery<'_>, limit: usize) -> R<Vec<User>> {
            let after = q.after.unwrap_or(Uuid::nil());
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let status = q.status.map(|s| s.as_str());
            // Byte order ("C"), so that a prefix is one range of the index.
            let ranges: Vec<(String, String)> = q
                .prefix
                .map(|p| login_prefixes(p).into_iter().map(|low| (format!("{low}\u{10FFFF}"), low)).collect())
                .unwrap_or_default();
            let mut sql = String::from("SELECT data FROM users WHERE id > $1");
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&after];
            if let Some(s) = &status {
                params.push(s);
                sql.push_str(&format!(" AND data->>'status' = ${}", params.len()));
            }
            if let Some(r) = &q.role {
                params.push(r);
                sql.push_str(&format!(" AND data->'roles' ? ${}", params.len()));
            }
            if !ranges.is_empty() {
                let mut any = Vec::new();
                for (high, low) in &ranges {
                    params.push(low);
                    params.push(high);
                    let n = params.len();
                    any.push(format!("(key COLLATE \"C\") >= ${} AND (key COLLATE \"C\") < ${n}", n - 1));
                }
                sql.push_str(&format!(" AND id IN (SELECT user_id FROM user_logins WHERE {})", any.join(" OR ")));
            }
            params.push(&limit);
            sql.push_str(&format!(" ORDER BY id LIMIT ${}", params.len()));
            self.c.docs(&sql, &params)
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
