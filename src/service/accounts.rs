//! Accounts: self-registration and the administrator's user commands.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    authority::{Authority, Principal},
    core::{Core, find_account, user_context},
    issuing::end_sessions,
    outbox::{Outbox, Recipient},
    passkeys::{EnrolVia, enrolment_secret},
    recovery::Recovery,
    roles::guard_last_admin,
    sessions::Sessions,
    verification::{Verification, write_outgoing},
};
use crate::{
    error::{Error, FieldError, Result},
    model::{User, UserStatus, now},
    security::identifiers::{Email, Phone, Username},
};

/// What a new account is made of, as typed by its future owner or an admin.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NewAccount {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub username: Option<String>,
    #[serde(skip_serializing)]
    pub password: Option<String>,
    pub roles: Vec<String>,
    /// `en` or `ru`: the language of the account's messages.
    #[serde(default)]
    pub locale: Option<String>,
}

/// Parses an optional field, collecting its error so that all fields are reported at once.
fn parse_field<T>(
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, FieldError>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match value.map(str::trim).filter(|s| !s.is_empty()).map(parse)? {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// Parsed login names, or every field error at once.
fn parse_names(a: &NewAccount) -> Result<(Option<Email>, Option<Phone>, Option<Username>)> {
    let mut errors: Vec<FieldError> = Vec::new();
    let email = parse_field(a.email.as_deref(), Email::parse, &mut errors);
    let phone = parse_field(a.phone.as_deref(), Phone::parse, &mut errors);
    let username = parse_field(a.username.as_deref(), Username::parse, &mut errors);
    if errors.is_empty() && email.is_none() && phone.is_none() {
        errors.push(FieldError::new("email", "required", "an email or a phone number is required"));
    }
    if errors.is_empty() { Ok((email, phone, username)) } else { Err(Error::Invalid(errors)) }
}

impl Accounts {
    /// Self-service sign-up: the account gets the `user` role. A password is required unless
    /// `passwords.optional`; without one, the answer carries a token that may only enrol a
    /// passkey. With verification on, a taken address answers like a new account (with a token
    /// that enrols nothing), and its owner is told.
    pub async fn register(
        &self,
        mut account: NewAccount,
        accept_language: Option<&str>,
    ) -> Result<(User, Option<String>)> {
        if account.password.is_none() && !self.core.cfg.passwords.optional {
            return Err(Error::invalid("password", "required", "password is required"));
        }
        account.roles = vec!["user".into()];
        self.create_user_as(None, account, "user.registered", accept_language).await
    }

    /// Creates an account (needs `users:write`, and every permission of the roles it gets);
    /// without a password it cannot sign in until one is set.
    pub async fn create_user(&self, who: &Principal, account: NewAccount) -> Result<User> {
        let authority = self.core.authority(who, "users:write")?;
        Ok(self.create_user_as(Some(authority), account, "user.created", None).await?.0)
    }

    async fn create_user_as(
        &self,
        authority: Option<Authority>,
        account: NewAccount,
        event: &'static str,
        accept_language: Option<&str>,
    ) -> Result<(User, Option<String>)> {
        let (email, phone, username) = parse_names(&account)?;
        if let Some(l) = account.locale.as_deref().filter(|l| !crate::messages::LOCALES.contains(l)) {
            return Err(Error::invalid(
                "locale",
                "unsupported_locale",
                format!("`{l}` is not one of {:?}", crate::messages::LOCALES),
            ));
        }
        let roles = if account.roles.is_empty() { vec!["user".to_string()] } else { account.roles.clone() };
        self.core.check_roles_exist(&roles)?;
        if let Some(a) = &authority {
            a.may_assign(&roles)?;
        }
        let mut user = User {
            email: email.map(Email::into_string),
            phone: phone.map(Phone::into_string),
            username: username.map(Username::into_string),
            locale: account.locale.clone(),
            ..User::new(roles, now())
        };
        if let Some(pw) = &account.password {
            self.core.policy.check("password", pw, &user_context(&user))?;
            user.password_hash = Some(self.core.hasher.hash(pw).await?);
        }
        let u = user.clone();
        let locale = self.outbox.locale_of(Some(&user), accept_language);
        let outgoing = self.verification.confirmations_for_new(&user, &locale)?;
        // A self-service account without a password starts with a passkey.
        let passwordless = authority.is_none() && user.password_hash.is_none();
        let shown_name = user.email.clone().or(user.phone.clone());
        let enrol =
            |id: Uuid| passwordless.then(|| enrolment_secret(&self.core, id, EnrolVia::Signup, shown_name.clone()));
        let (secret, token) = enrol(user.id).unzip();
        let inserted = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    tx.insert_user(&u)?;
                    write_outgoing(tx, &outgoing)?;
                    if let Some(secret) = &secret {
                        tx.put_one_time(secret)?;
                    }
                    tx.audit(event, Some(u.id), None, serde_json::json!({"roles": u.roles}))?;
                    Ok(())
                })
            })
            .await;
        match inserted {
            Ok(()) => {}
            Err(Error::Conflict(field)) if authority.is_none() && self.verification.hides_duplicate(field) => {
                self.tell_owner_of_attempt(&user, field, &locale).await?;
                // The same answer a new account gets, down to a fresh id and a token that goes
                // through enrolment and stores nothing.
                let decoy = User { id: Uuid::now_v7(), ..user };
                let (secret, token) = enrol(decoy.id).unzip();
                if let Some(secret) = secret {
                    self.core.db(move |s| s.write(|tx| Ok(tx.put_one_time(&secret)?))).await?;
                }
                return Ok((decoy, token));
            }
            Err(e) => return Err(e),
        }
        tracing::info!(event = "user_created", user_id = %user.id, "user created");
        Ok((user, token))
    }

    /// Someone tried to register with an address that has an account: its owner gets a mail
    /// (email only; a phone gets nothing, which costs them an SMS per attempt otherwise).
    async fn tell_owner_of_attempt(&self, attempted: &User, field: &str, accept_locale: &str) -> Result<()> {
        let Some(email) = attempted.email.clone().filter(|_| field == "email") else { return Ok(()) };
        let lookup = email.clone();
        let owner = self
            .core
            .db(move |s| s.read(|tx| tx.user_by_login(crate::model::LoginName::Email(&lookup)).map_err(Error::from)))
            .await?;
        let Some(owner) = owner else { return Ok(()) };
        let locale = owner.locale.clone().unwrap_or_else(|| accept_locale.to_owned());
        let to = Recipient { address: email, locale };
        let link = self.recovery.link_to_forgot();
        let message = self.outbox.message(
            crate::messages::MessageKind::RegistrationAttempt,
            &to,
            std::collections::BTreeMap::from([("link", link)]),
        )?;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    tx.emit(&message)?;
                    tx.audit_failure("user.registration_attempted", Some(owner.id), None, serde_json::Value::Null)?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn get_user(&self, id: Uuid) -> Result<User> {
        self.core.user(id).await
    }

    /// A user to show. Served from memory when cached, so `GET /v1/me` then reads no storage;
    /// decisions read [`Self::get_user`] instead.
    pub async fn user_profile(&self, id: Uuid) -> Result<std::sync::Arc<User>> {
        if let Some(u) = self.core.store.cached_user(id) {
            return Ok(u);
        }
        self.core.db(move |s| s.load_user(id).map_err(Error::from)).await?.ok_or(Error::NotFound("user"))
    }

    /// A user, for an admin (needs `users:read`).
    pub async fn admin_user(&self, by: &Principal, id: Uuid) -> Result<std::sync::Arc<User>> {
        self.core.authority(by, "users:read")?;
        self.user_profile(id).await
    }

    /// A user by id, email, phone or username, for an admin (needs `users:read`).
    pub async fn admin_find_user(&self, by: &Principal, who: &str) -> Result<User> {
        self.core.authority(by, "users:read")?;
        self.find_user(who).await
    }

    /// A user's live sessions, for an admin (needs `users:read`).
    pub async fn admin_sessions(&self, by: &Principal, id: Uuid) -> Result<Vec<crate::model::Session>> {
        self.core.authority(by, "users:read")?;
        self.core.user(id).await?;
        self.sessions.list_sessions(id).await
    }

    /// Ends every session of a user (needs `sessions:revoke`, and every permission the user
    /// holds: signing out someone mightier is changing them).
    pub async fn admin_end_sessions(&self, by: &Principal, id: Uuid) -> Result<()> {
        let authority = self.core.authority(by, "sessions:revoke")?;
        authority.may_change(&self.core.user(id).await?.roles)?;
        self.sessions.logout_all(id).await
    }

    /// Ends one session of a user (as [`Self::admin_end_sessions`]).
    pub async fn admin_end_session(&self, by: &Principal, id: Uuid, session: Uuid) -> Result<()> {
        let authority = self.core.authority(by, "sessions:revoke")?;
        authority.may_change(&self.core.user(id).await?.roles)?;
        self.sessions.revoke_session(id, session).await
    }

    /// Finds a user by id, email, phone or username.
    pub async fn find_user(&self, who: &str) -> Result<User> {
        let who = who.to_owned();
        self.core.db(move |s| s.read(|tx| find_account(tx, &who))).await
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.core.db(|s| s.read(|tx| tx.users().map_err(Error::from))).await
    }

    /// Replaces the user's roles. Tokens carrying the old roles are refused from now on; a
    /// refresh yields a token with the new ones.
    pub async fn set_roles(&self, by: &Principal, who: &str, roles: Vec<String>) -> Result<User> {
        let authority = self.core.authority(by, "users:write")?;
        if roles.is_empty() {
            return Err(Error::invalid("roles", "required", "at least one role is required"));
        }
        self.core.check_roles_exist(&roles)?;
        authority.may_assign(&roles)?;
        let who = who.to_owned();
        let user = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let before = find_account(&**tx, &who)?;
                    authority.may_change(&before.roles)?;
                    let mut u = before.clone();
                    u.roles = roles;
                    guard_last_admin(tx, &before, Some(&u))?;
                    u.updated_at = tx.now();
                    tx.bump_authz(u.id, &mut u.authz_gen)?;
                    tx.update_user(&u)?;
                    tx.audit("user.roles_changed", Some(u.id), None, serde_json::json!({"roles": u.roles}))?;
                    Ok(u)
                })
            })
            .await?;
        tracing::info!(event = "roles_changed", user_id = %user.id, roles = ?user.roles, "roles changed");
        Ok(user)
    }

    /// Sets a user's password (admin); every session of the user ends.
    pub async fn set_password(&self, by: &Principal, who: &str, password: &str) -> Result<User> {
        let authority = self.core.authority(by, "users:write")?;
        let user = self.find_user(who).await?;
        authority.may_change(&user.roles)?;
        self.core.policy.check("password", password, &user_context(&user))?;
        let phc = self.core.hasher.hash(password).await?;
        let user = self
            .update_and_end_sessions(authority, user.id, "user.password_set", move |u| u.password_hash = Some(phc))
            .await?;
        tracing::info!(event = "password_set", user_id = %user.id, "password set by admin");
        Ok(user)
    }

    /// Disables (ending every session and token) or re-enables an account (needs `users:write`
    /// or `users:disable`, and every permission the account has).
    pub async fn set_status(&self, by: &Principal, who: &str, status: UserStatus) -> Result<User> {
        let authority = self.core.authority_any(by, &["users:write", "users:disable"])?;
        let user = self.find_user(who).await?;
        authority.may_change(&user.roles)?;
        let user = if status == UserStatus::Disabled {
            self.update_and_end_sessions(authority, user.id, "user.disabled", move |u| u.status = status).await?
        } else {
            let id = user.id;
            self.core
                .db(move |s| {
                    s.write(|tx| {
                        let mut u = tx.user(id)?.ok_or(Error::NotFound("user"))?;
                        authority.may_change(&u.roles)?;
                        u.status = status;
                        u.updated_at = tx.now();
                        tx.update_user(&u)?;
                        tx.audit("user.enabled", Some(id), None, serde_json::Value::Null)?;
                        Ok(u)
                    })
                })
                .await?
        };
        tracing::info!(event = "user_status", user_id = %user.id, status = status.as_str(), "user status changed");
        Ok(user)
    }

    /// Deletes an account with its sessions; its tokens are refused from now on.
    pub async fn delete_user(&self, by: &Principal, who: &str) -> Result<User> {
        let authority = self.core.authority(by, "users:write")?;
        let who = who.to_owned();
        let user = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let u = find_account(&**tx, &who)?;
                    authority.may_change(&u.roles)?;
                    tx.audit("user.deleted", Some(u.id), None, serde_json::Value::Null)?;
                    guard_last_admin(tx, &u, None)?;
                    // The store deletes the sessions with the user; their tokens are refused too.
                    let sids = tx.delete_user(u.id)?;
                    tx.revoke_sessions(&sids)?;
                    tx.cut_off_user(u.id)?;
                    Ok(u)
                })
            })
            .await?;
        tracing::info!(event = "user_deleted", user_id = %user.id, "user deleted");
        Ok(user)
    }

    /// Changes a user and ends all its sessions in one transaction; disabling also cuts off
    /// every access token issued so far.
    async fn update_and_end_sessions(
        &self,
        authority: Authority,
        id: Uuid,
        event: &'static str,
        change: impl FnOnce(&mut User) + Send + 'static,
    ) -> Result<User> {
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let before = tx.user(id)?.ok_or(Error::NotFound("user"))?;
                    authority.may_change(&before.roles)?;
                    let mut u = before.clone();
                    change(&mut u);
                    guard_last_admin(tx, &before, Some(&u))?;
                    u.updated_at = tx.now();
                    tx.bump_authz(id, &mut u.authz_gen)?;
                    tx.update_user(&u)?;
                    end_sessions(tx, id, None, false)?;
                    tx.audit(event, Some(id), None, serde_json::Value::Null)?;
                    Ok(u)
                })
            })
            .await
    }
}

/// An admin's change to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub username: Option<String>,
    pub roles: Option<Vec<String>>,
    pub status: Option<UserStatus>,
    pub password_reset_required: Option<bool>,
}

/// A page of users, oldest first.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next_cursor: Option<Uuid>,
}

/// Which users to list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<String>,
    pub status: Option<UserStatus>,
    /// Prefix of the email, phone or username.
    pub search: Option<String>,
}

/// Accounts: self-registration and the administrator's user commands.
pub struct Accounts {
    core: Arc<Core>,
    outbox: Outbox,
    verification: Verification,
    recovery: Recovery,
    sessions: Sessions,
}

impl Accounts {
    pub(super) fn new(
        core: Arc<Core>,
        outbox: Outbox,
        verification: Verification,
        recovery: Recovery,
        sessions: Sessions,
    ) -> Self {
        Self { core, outbox, verification, recovery, sessions }
    }

    /// Users after `cursor` (ids are time-ordered, so pages stay stable while users are added).
    /// Needs `users:read`.
    pub async fn list_users_page(
        &self,
        by: &Principal,
        cursor: Option<Uuid>,
        limit: usize,
        filter: UserFilter,
    ) -> Result<UserPage> {
        self.core.authority(by, "users:read")?;
        let search = filter.search.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
        let mut page = self
            .core
            .db(move |s| {
                let q = crate::store::UserQuery {
                    after: cursor,
                    status: filter.status,
                    role: filter.role.as_deref(),
                    prefix: search.as_deref(),
                };
                s.read(|tx| tx.users_page(&q, limit + 1).map_err(Error::from))
            })
            .await?;
        let next_cursor = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|u| u.id)
        } else {
            None
        };
        Ok(UserPage { users: page, next_cursor })
    }

    /// Applies an admin's change. New roles or a disable refuse the user's current tokens;
    /// a disable also ends the sessions.
    /// Needs `users:write` (`users:disable` suffices to change only `status`), every permission
    /// the user has, and every permission of roles given.
    pub async fn patch_user(&self, by: &Principal, id: Uuid, patch: UserPatch) -> Result<User> {
        let only_status = patch.email.is_none()
            && patch.phone.is_none()
            && patch.username.is_none()
            && patch.roles.is_none()
            && patch.password_reset_required.is_none();
        let authority = if only_status {
            self.core.authority_any(by, &["users:write", "users:disable"])?
        } else {
            self.core.authority(by, "users:write")?
        };
        let mut errors = Vec::new();
        let email = parse_field(patch.email.as_deref(), Email::parse, &mut errors);
        let phone = parse_field(patch.phone.as_deref(), Phone::parse, &mut errors);
        let username = parse_field(patch.username.as_deref(), Username::parse, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        if let Some(roles) = &patch.roles {
            if roles.is_empty() {
                return Err(Error::invalid("roles", "required", "at least one role is required"));
            }
            self.core.check_roles_exist(roles)?;
            authority.may_assign(roles)?;
        }
        let user = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let before = tx.user(id)?.ok_or(Error::NotFound("user"))?;
                    authority.may_change(&before.roles)?;
                    let mut u = before.clone();
                    if let Some(e) = email {
                        u.email = Some(e.into_string());
                    }
                    if let Some(p) = phone {
                        u.phone = Some(p.into_string());
                    }
                    if let Some(n) = username {
                        u.username = Some(n.into_string());
                    }
                    if let Some(r) = patch.roles {
                        u.roles = r;
                    }
                    if let Some(s) = patch.status {
                        u.status = s;
                    }
                    if let Some(f) = patch.password_reset_required {
                        u.password_reset_required = f;
                    }
                    guard_last_admin(tx, &before, Some(&u))?;
                    u.updated_at = tx.now();
                    let mut ended = 0;
                    if u.status == UserStatus::Disabled && before.status != UserStatus::Disabled {
                        ended = end_sessions(tx, id, None, false)?;
                    }
                    if u.roles != before.roles || ended > 0 {
                        tx.bump_authz(id, &mut u.authz_gen)?;
                    }
                    tx.update_user(&u)?;
                    let details = serde_json::json!({"roles": u.roles, "status": u.status.as_str()});
                    tx.audit("user.updated", Some(id), None, details)?;
                    Ok(u)
                })
            })
            .await?;
        tracing::info!(user_id = %user.id, "user updated by admin");
        Ok(user)
    }
}
