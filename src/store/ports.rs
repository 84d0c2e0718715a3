//! What services may ask of storage, one trait per aggregate. A backend implements them for its
//! read and its write transaction; [`ReadTx`] and [`WriteTx`] are the sums services hold.

use uuid::Uuid;

use super::StoreError;
use crate::model::{
    AuditEvent, Client, Identity, OneTimeSecret, OutboxMessage, Passkey, Purpose, RefreshRecord, Revocation, Role,
    Session, SigningKeyRecord, StoredWebhook, UnixTime, User, UserStatus,
};

pub use crate::model::{LoginName, login_names};

pub type R<T> = Result<T, StoreError>;

/// Which users to list: those after `after`, oldest first (ids are UUIDv7), that have the
/// status, hold the role, and have a login name starting with `prefix`, each when given.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserQuery<'a> {
    pub after: Option<Uuid>,
    pub status: Option<UserStatus>,
    pub role: Option<&'a str>,
    pub prefix: Option<&'a str>,
}

impl UserQuery<'_> {
    pub fn matches(&self, u: &User) -> bool {
        self.after.is_none_or(|a| u.id > a)
            && self.status.is_none_or(|s| u.status == s)
            && self.role.is_none_or(|r| u.roles.iter().any(|x| x == r))
            && self.prefix.is_none_or(|p| {
                [&u.email, &u.phone, &u.username].iter().any(|f| f.as_deref().is_some_and(|v| v.starts_with(p)))
            })
    }
}

/// The keys a user is listed under besides its id: `s:<status>`, and `r:<role>` per role.
pub fn user_facets(u: &User) -> Vec<String> {
    let mut keys = vec![format!("s:{}", u.status.as_str())];
    keys.extend(u.roles.iter().map(|r| format!("r:{r}")));
    keys
}

/// The index-key prefixes of login names that start with `prefix`, one per kind of name.
pub fn login_prefixes(prefix: &str) -> [String; 3] {
    [LoginName::Email(prefix).key(), LoginName::Phone(prefix).key(), LoginName::Username(prefix).key()]
}

pub trait UserReads {
    fn user(&self, id: Uuid) -> R<Option<User>>;
    fn user_by_login(&self, name: LoginName<'_>) -> R<Option<User>>;
    /// All users, oldest first (ids are UUIDv7).
    fn users(&self) -> R<Vec<User>>;
    /// How many users there are, without reading them (an estimate where exact would mean a
    /// scan of a large table).
    fn user_count(&self) -> R<u64>;
    /// At most `limit` users that `q` matches, oldest first, found through indexes (by status,
    /// role or login-name prefix), never by reading every user.
    fn users_page(&self, q: &UserQuery<'_>, limit: usize) -> R<Vec<User>>;
}

pub trait UserWrites {
    /// Adds a user; `Duplicate` when any of its login names is taken.
    fn insert_user(&mut self, user: &User) -> R<()>;
    /// Replaces a user, moving its login names; `Duplicate` when a new one is taken.
    fn update_user(&mut self, user: &User) -> R<()>;
    /// Removes a user, its login names, sessions, identities and passkeys; returns the removed
    /// session ids.
    fn delete_user(&mut self, id: Uuid) -> R<Vec<Uuid>>;
}

pub trait SessionReads {
    fn session(&self, id: Uuid) -> R<Option<Session>>;
    /// How many sessions are stored (expired ones go at the next prune), without reading them;
    /// an estimate where exact would mean a scan of a large table.
    fn session_count(&self) -> R<u64>;
    fn session_ids_of(&self, user: Uuid) -> R<Vec<Uuid>>;
    fn sessions_of(&self, user: Uuid) -> R<Vec<Session>>;
    /// In a write transaction, the record stays locked until it ends, so two rotations of one
    /// refresh token serialize on every backend.
    fn refresh(&self, hash: &[u8]) -> R<Option<RefreshRecord>>;
    /// Every session, for copying a database.
    fn all_sessions(&self) -> R<Vec<Session>>;
    /// Every refresh record with its hash, for copying a database.
    fn all_refresh(&self) -> R<Vec<(Vec<u8>, RefreshRecord)>>;
}

pub trait SessionWrites {
    fn put_session(&mut self, s: &Session) -> R<()>;
    /// Removes a session. Its refresh-token hashes stay until they expire: a lookup that finds
    /// no session treats them as unknown.
    fn delete_session(&mut self, id: Uuid) -> R<Option<Session>>;
    fn put_refresh(&mut self, hash: &[u8], rec: &RefreshRecord) -> R<()>;
    /// Drops expired refresh hashes, revocations and sessions; returns how many records went.
    fn prune(&mut self, now: UnixTime) -> R<usize>;
}

pub trait RevocationReads {
    fn revocations(&self) -> R<Vec<Revocation>>;
}

pub trait RevocationWrites {
    fn put_revocation(&mut self, r: &Revocation) -> R<()>;
}

pub trait KeyReads {
    fn signing_keys(&self) -> R<Vec<SigningKeyRecord>>;
    /// A named secret every node shares (e.g. the challenge MAC key).
    fn secret(&self, name: &str) -> R<Option<Vec<u8>>>;
}

pub trait KeyWrites {
    fn put_signing_key(&mut self, k: &SigningKeyRecord) -> R<()>;
    /// Stores `value` under `name` unless a value is there; returns the one that is. Nodes
    /// starting together agree on one.
    fn ensure_secret(&mut self, name: &str, value: &[u8]) -> R<Vec<u8>>;
}

pub trait RoleReads {
    fn roles(&self) -> R<Vec<Role>>;
}

pub trait RoleWrites {
    fn put_role(&mut self, r: &Role) -> R<()>;
    fn delete_role(&mut self, name: &str) -> R<()>;
}

pub trait ClientReads {
    fn client(&self, id: Uuid) -> R<Option<Client>>;
    fn clients(&self) -> R<Vec<Client>>;
}

pub trait ClientWrites {
    fn put_client(&mut self, c: &Client) -> R<()>;
    fn delete_client(&mut self, id: Uuid) -> R<bool>;
}

/// Which audit events to read, newest first (oldest first with `after`): about `subject`, named `event` or `event.*`, in
/// `[since_ms, until_ms)`, older than the event `before`, each when given. With `after`: newer
/// than that event, oldest first (a live tail's next page).
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditQuery<'a> {
    pub subject: Option<Uuid>,
    pub event: Option<&'a str>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub before: Option<Uuid>,
    pub after: Option<Uuid>,
}

impl AuditQuery<'_> {
    /// Oldest first, from `after` on.
    pub fn ascending(&self) -> bool {
        self.after.is_some()
    }

    /// The ids events in range can have, `[low, high)`. Ids are UUIDv7, so time-ordered, and
    /// made within moments of `time_ms`; the bounds are a second wider than asked each side,
    /// and the caller's filter decides at the edges.
    pub fn id_range(&self) -> (Uuid, Uuid) {
        let at = |ms: u64| Uuid::from_u128(u128::from(ms.min((1 << 48) - 1)) << 80);
        let low = self.since_ms.map_or(Uuid::nil(), |s| at(s.saturating_sub(1_000)));
        let mut high = self.until_ms.map_or(Uuid::max(), |u| at(u.saturating_add(1_000)));
        if let Some(b) = self.before {
            high = high.min(b);
        }
        let low = match self.after {
            Some(a) => low.max(Uuid::from_u128(a.as_u128().saturating_add(1))),
            None => low,
        };
        (low, high)
    }
}

/// Every dotted prefix of an event name, the name itself last: `user`, `user.created`. An event
/// is indexed under each, so that a filter on a family is one range.
pub fn event_families(event: &str) -> impl Iterator<Item = &str> {
    event.match_indices('.').map(|(i, _)| &event[..i]).chain(std::iter::once(event))
}

pub trait AuditReads {
    /// Events newest first that `q` selects (through an index by subject, by event or by time,
    /// never a scan of the log) and that pass `keep`, at most `limit`.
    fn audit_events(&self, q: &AuditQuery<'_>, limit: usize, keep: &dyn Fn(&AuditEvent) -> bool) -> R<Vec<AuditEvent>>;
    /// How many events of `event` (one of [`COUNTED_EVENTS`]) were written each minute from
    /// the minute holding `since_ms` on, as (start of the minute in ms, count), oldest first;
    /// minutes with none are left out. Kept as the events are written: nothing counted here.
    fn audit_counts(&self, event: &str, since_ms: u64) -> R<Vec<(u64, u64)>>;
}

/// Events counted per minute as they are written, for the console's overview.
pub const COUNTED_EVENTS: [&str; 2] = ["user.logged_in", "user.login_failed"];

/// The start of the minute holding `ms`.
pub fn minute_of(ms: u64) -> u64 {
    ms - ms % 60_000
}

pub trait AuditWrites {
    /// Stores the event only; what else it sets off is the service's business.
    fn insert_audit(&mut self, e: &AuditEvent) -> R<()>;
    /// Drops events older than `before_ms`; returns how many.
    fn prune_audit(&mut self, before_ms: u64) -> R<usize>;
}

pub trait WebhookReads {
    fn stored_webhooks(&self) -> R<Vec<StoredWebhook>>;
    /// Pending deliveries due at `now_ms`, oldest first, at most `limit`.
    fn due_deliveries(&self, now_ms: u64, limit: usize) -> R<Vec<OutboxMessage>>;
    fn deliveries(&self) -> R<Vec<OutboxMessage>>;
}

pub trait WebhookWrites {
    fn put_webhook(&mut self, w: &StoredWebhook) -> R<()>;
    fn delete_webhook(&mut self, id: Uuid) -> R<bool>;
    /// Adds or updates a delivery in the outbox.
    fn put_delivery(&mut self, d: &OutboxMessage) -> R<()>;
    /// Drops finished deliveries created before `before_ms`.
    fn prune_deliveries(&mut self, before_ms: u64) -> R<usize>;
}

pub trait IdentityReads {
    fn identity(&self, provider: &str, subject: &str) -> R<Option<Identity>>;
    fn identity_by_id(&self, id: Uuid) -> R<Option<Identity>>;
    /// A user's linked identities, oldest first.
    fn identities_of(&self, user: Uuid) -> R<Vec<Identity>>;
    /// Every identity, for copying a database.
    fn all_identities(&self) -> R<Vec<Identity>>;
}

pub trait IdentityWrites {
    /// Adds or updates an identity; `Duplicate("identity")` when another holds its
    /// `(provider, subject)`.
    fn put_identity(&mut self, i: &Identity) -> R<()>;
    fn delete_identity(&mut self, id: Uuid) -> R<bool>;
}

pub trait PasskeyReads {
    fn passkey(&self, id: Uuid) -> R<Option<Passkey>>;
    fn passkey_by_credential(&self, credential_id: &[u8]) -> R<Option<Passkey>>;
    /// A user's passkeys, oldest first.
    fn passkeys_of(&self, user: Uuid) -> R<Vec<Passkey>>;
    /// Every passkey, for copying a database.
    fn all_passkeys(&self) -> R<Vec<Passkey>>;
}

pub trait PasskeyWrites {
    /// Adds or updates a passkey; `Duplicate("passkey")` when another holds its credential id.
    fn put_passkey(&mut self, p: &Passkey) -> R<()>;
    fn delete_passkey(&mut self, id: Uuid) -> R<bool>;
}

pub trait OneTimeReads {
    fn one_time(&self, id: &str) -> R<Option<OneTimeSecret>>;
    /// The secret whose long token hashes to `hash`.
    fn one_time_by_token(&self, hash: &[u8]) -> R<Option<OneTimeSecret>>;
    /// Every live secret, for copying a database.
    fn one_time_secrets(&self) -> R<Vec<OneTimeSecret>>;
    /// The secrets for `purpose` that confirm `target` (an address), whoever holds them.
    fn one_time_for_target(&self, purpose: Purpose, target: &str) -> R<Vec<OneTimeSecret>>;
}

pub trait OneTimeWrites {
    /// Adds a secret, or replaces the one with the same id.
    fn put_one_time(&mut self, s: &OneTimeSecret) -> R<()>;
    /// Adds a secret unless one with its id exists; true when added. Of two transactions that
    /// claim the same id at once, exactly one gets true (the other waits for it to commit).
    fn claim_one_time(&mut self, s: &OneTimeSecret) -> R<bool>;
    /// Spends or burns a secret; false when it was not there.
    fn delete_one_time(&mut self, id: &str) -> R<bool>;
    /// Drops secrets expired at `now`; returns how many.
    fn prune_one_time(&mut self, now: UnixTime) -> R<usize>;
    /// Drops every secret of `user` for one of `purposes`; returns how many.
    fn delete_one_time_of(&mut self, user: Uuid, purposes: &[Purpose]) -> R<usize>;
}

/// Everything a read transaction offers.
pub trait ReadTx:
    UserReads
    + SessionReads
    + RevocationReads
    + KeyReads
    + RoleReads
    + ClientReads
    + AuditReads
    + WebhookReads
    + OneTimeReads
    + IdentityReads
    + PasskeyReads
{
}

impl<T> ReadTx for T where
    T: UserReads
        + SessionReads
        + RevocationReads
        + KeyReads
        + RoleReads
        + ClientReads
        + AuditReads
        + WebhookReads
        + OneTimeReads
        + IdentityReads
        + PasskeyReads
{
}

/// Everything a write transaction offers: all reads, and every change, committed together.
pub trait WriteTx:
    ReadTx
    + UserWrites
    + SessionWrites
    + RevocationWrites
    + KeyWrites
    + RoleWrites
    + ClientWrites
    + AuditWrites
    + WebhookWrites
    + OneTimeWrites
    + IdentityWrites
    + PasskeyWrites
{
}

impl<T> WriteTx for T where
    T: ReadTx
        + UserWrites
        + SessionWrites
        + RevocationWrites
        + KeyWrites
        + RoleWrites
        + ClientWrites
        + AuditWrites
        + WebhookWrites
        + OneTimeWrites
        + IdentityWrites
        + PasskeyWrites
{
}

/// A write transaction a backend has begun.
pub trait Transaction: WriteTx {
    fn commit(self: Box<Self>) -> R<()>;
    fn abort(self: Box<Self>);
}

/// What was committed to a database that several nodes share, as every node hears of it.
#[derive(Debug, Clone)]
pub enum Change {
    /// Refuse these tokens from now on.
    Revoked(Revocation),
    /// Signing keys changed (rotation): reload them.
    Keys,
    /// A role changed: reload roles.
    Roles,
    /// A user changed or went: forget any copy of it.
    User(Uuid),
    /// A client changed or went: likewise.
    Client(Uuid),
    /// The feed was (re)connected and may have missed changes: reload everything.
    Resync,
}

/// Changes in commit order, for as long as the receiver lives.
pub type ChangeFeed = tokio::sync::mpsc::Receiver<Change>;

/// A storage engine.
pub trait Backend: Send + Sync {
    fn begin_read(&self) -> R<Box<dyn ReadTx + '_>>;
    fn begin_write(&self) -> R<Box<dyn Transaction + '_>>;
    /// Changes other processes commit; `None` for a database only this process opens.
    fn changes(&self) -> Option<ChangeFeed> {
        None
    }
    /// Reports how many commits each durable sync covered, where the backend batches them.
    fn observe_commit_batches(&self, _f: BatchObserver) {}
    /// Writes a consistent copy of the whole database into the new file `to` while writers go
    /// on, where the engine is a file of ours.
    fn snapshot(&self, _to: &std::path::Path) -> R<super::Snapshot> {
        Err(super::StoreError::Unsupported("this database is copied with its own tools (pg_dump)"))
    }
}

/// Told how many commits one durable sync made durable.
pub type BatchObserver = Box<dyn Fn(usize) + Send + Sync>;

/// The key a revocation is stored under: one per session, one per user.
pub fn revocation_key(r: &Revocation) -> String {
    let kind = match r.kind {
        crate::model::RevocationKind::Session => 's',
        crate::model::RevocationKind::UserBefore => 'u',
    };
    format!("{kind}:{}", r.id)
}
