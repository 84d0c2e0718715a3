//! Every redb table, in one place. Values are records encoded by `codec`.

use redb::{MultimapTableDefinition, TableDefinition};
use uuid::Uuid;

/// `schema_version` and other counters.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// user id → User
pub const USERS: TableDefinition<Uuid, &[u8]> = TableDefinition::new("users");
/// `e:<email>` / `p:<e164>` / `u:<username>` → user id (uniqueness of every login name)
pub const USER_INDEX: TableDefinition<&str, Uuid> = TableDefinition::new("user_index");
/// (`s:<status>` or `r:<role>`, user id): users by status and by role, oldest first
pub const USER_FACETS: TableDefinition<(&str, Uuid), ()> = TableDefinition::new("user_facets");
/// session id → Session
pub const SESSIONS: TableDefinition<Uuid, &[u8]> = TableDefinition::new("sessions");
/// user id → session ids
pub const USER_SESSIONS: MultimapTableDefinition<Uuid, Uuid> = MultimapTableDefinition::new("user_sessions");
/// SHA-256 of a refresh token → RefreshRecord
pub const REFRESH_TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("refresh_tokens");
/// `s:<sid>` / `u:<user id>` → Revocation
pub const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
/// kid → SigningKeyRecord
pub const SIGNING_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("signing_keys");
/// event id (UUIDv7, so time-ordered) → AuditEvent
pub const AUDIT: TableDefinition<Uuid, &[u8]> = TableDefinition::new("audit");
/// (subject, event id) of every audit event about a subject: a user's events without a scan
pub const AUDIT_BY_SUBJECT: TableDefinition<(Uuid, Uuid), ()> = TableDefinition::new("audit_by_subject");
/// (event name or a dotted prefix of it, event id): events by name or family without a scan
pub const AUDIT_BY_EVENT: TableDefinition<(&str, Uuid), ()> = TableDefinition::new("audit_by_event");
/// (counted event, start of the minute in ms) → how many were written that minute
pub const AUDIT_COUNTS: TableDefinition<(&str, u64), u64> = TableDefinition::new("audit_counts");
/// delivery id (UUIDv7) → OutboxMessage: the durable outbox
pub const WEBHOOK_OUTBOX: TableDefinition<Uuid, &[u8]> = TableDefinition::new("webhook_outbox");
/// pending delivery id → when to try next (ms): what the delivery worker scans, so it never
/// reads the delivered history
pub const WEBHOOK_PENDING: TableDefinition<Uuid, u64> = TableDefinition::new("webhook_pending");
/// endpoint id → StoredWebhook (endpoints added at run time)
pub const WEBHOOKS: TableDefinition<Uuid, &[u8]> = TableDefinition::new("webhooks");
/// client id → Client
pub const CLIENTS: TableDefinition<Uuid, &[u8]> = TableDefinition::new("clients");
/// name → a secret every process shares (the challenge MAC key)
pub const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// role name → Role
pub const ROLES: TableDefinition<&str, &[u8]> = TableDefinition::new("roles");

/// one-time secret id → OneTimeSecret
pub const ONE_TIME: TableDefinition<&str, &[u8]> = TableDefinition::new("one_time");
/// SHA-256 of a one-time secret's long token → its id
pub const ONE_TIME_TOKENS: TableDefinition<&[u8], &str> = TableDefinition::new("one_time_tokens");

/// identity id → Identity
pub const IDENTITIES: TableDefinition<Uuid, &[u8]> = TableDefinition::new("identities");
/// `<provider>\0<subject>` → identity id (uniqueness of external accounts)
pub const IDENTITY_INDEX: TableDefinition<&str, Uuid> = TableDefinition::new("identity_index");
/// user id → identity ids
pub const USER_IDENTITIES: MultimapTableDefinition<Uuid, Uuid> = MultimapTableDefinition::new("user_identities");

/// passkey id → Passkey
pub const PASSKEYS: TableDefinition<Uuid, &[u8]> = TableDefinition::new("passkeys");
/// credential id → passkey id (uniqueness of credentials)
pub const PASSKEY_INDEX: TableDefinition<&[u8], Uuid> = TableDefinition::new("passkey_index");
/// user id → passkey ids
pub const USER_PASSKEYS: MultimapTableDefinition<Uuid, Uuid> = MultimapTableDefinition::new("user_passkeys");

/// 2: the audit log has a subject index (built from the log when a version-1 file opens).
/// 3: users by status and role, audit events by name (built when an older file opens).
/// 4: sign-ins and failures counted per minute (counted from the log when an older file opens).
pub const SCHEMA_VERSION: u64 = 4;
