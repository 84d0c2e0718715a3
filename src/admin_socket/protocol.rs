//! One JSON object per line each way.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    model::{AuditEvent, Role, User},
    service::{DeliveryCounts, KeyInfo, NewClient, ServiceClientInfo, WebhookInfo},
};

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    UserAdd {
        email: Option<String>,
        phone: Option<String>,
        username: Option<String>,
        roles: Vec<String>,
        password: Option<String>,
    },
    UserList,
    UserShow {
        who: String,
    },
    UserSetRoles {
        who: String,
        roles: Vec<String>,
    },
    UserPasswd {
        who: String,
        password: String,
    },
    UserDisable {
        who: String,
    },
    UserEnable {
        who: String,
    },
    UserDelete {
        who: String,
    },
    UserMfaReset {
        who: String,
    },
    UserUnlink {
        who: String,
        identity: Uuid,
    },
    UserRecoveryLink {
        who: String,
    },
    KeysList,
    KeysRotate,
    /// A consistent copy of the database: the reply line is followed by its bytes.
    Backup,
    RoleList,
    RoleAdd {
        name: String,
        permissions: Vec<String>,
    },
    RoleChange {
        name: String,
        grant: Vec<String>,
        revoke: Vec<String>,
    },
    RoleRequireMfa {
        name: String,
        required: bool,
    },
    RoleDelete {
        name: String,
        force: bool,
    },
    WebhookStatus,
    WebhookList,
    WebhookAdd {
        url: String,
        events: Vec<String>,
        secret: Option<String>,
    },
    WebhookDelete {
        id: Uuid,
    },
    ClientAdd {
        client: NewClient,
    },
    ClientList,
    ClientShow {
        id: Uuid,
    },
    ClientRemove {
        id: Uuid,
    },
    ClientRotateSecret {
        id: Uuid,
    },
    /// Which forward-auth rule decides a request, and why.
    ForwardAuthTest {
        url: String,
        method: String,
        /// Signed in as this user; none: not signed in.
        user: Option<String>,
        /// The session has two factors.
        mfa: bool,
        /// The client's address, for rules with networks.
        from: Option<std::net::IpAddr>,
    },
    /// Newest first, older than `before` when given.
    Audit {
        user: Option<String>,
        event: Option<String>,
        outcome: Option<String>,
        since_ms: Option<u64>,
        before: Option<Uuid>,
        limit: usize,
    },
}

/// A user as the CLI shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserView {
    pub id: Uuid,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub username: Option<String>,
    pub roles: Vec<String>,
    pub status: String,
    pub has_password: bool,
    #[serde(default)]
    pub mfa_enabled: bool,
    /// `<identity id> <provider>:<subject>` for each linked provider (filled by `user show`).
    #[serde(default)]
    pub identities: Vec<String>,
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        let mfa_enabled = u.has_totp();
        Self {
            id: u.id,
            email: u.email,
            phone: u.phone,
            username: u.username,
            roles: u.roles,
            status: u.status.as_str().into(),
            has_password: u.password_hash.is_some(),
            mfa_enabled,
            identities: Vec::new(),
            created_at: crate::model::rfc3339(u.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum AdminReply {
    User(UserView),
    Users(Vec<UserView>),
    Key(KeyInfo),
    Keys(Vec<KeyInfo>),
    Role(Role),
    Roles(Vec<Role>),
    Events(Vec<AuditEvent>),
    Webhooks(DeliveryCounts),
    Endpoints(Vec<WebhookInfo>),
    Endpoint(WebhookInfo),
    Client(ServiceClientInfo),
    Clients(Vec<ServiceClientInfo>),
    /// A single-use recovery link for a user.
    Link {
        user: UserView,
        link: String,
        expires_in: u64,
    },
    ForwardAuth(crate::service::ForwardExplanation),
    /// The copy's `bytes` follow this line on the socket.
    Backup {
        manifest: crate::service::backups::Manifest,
        /// The data key, base64.
        key: String,
        bytes: u64,
        /// Of the copy's bytes, hex: the client checks what arrived.
        sha256: String,
    },
    Done,
    Error {
        code: String,
        message: String,
    },
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::AdminRequest;

    proptest! {
        /// Whatever reaches the socket is a request or a clean refusal.
        #[test]
        fn arbitrary_lines_parse_or_are_refused(line in "[ -~]{0,300}") {
            let _ = serde_json::from_str::<AdminRequest>(&line);
        }
    }

    #[test]
    fn the_seed_corpus_parses_or_is_refused() {
        for line in include_str!("../../fuzz/seeds/admin.txt").lines() {
            let _ = serde_json::from_str::<AdminRequest>(line);
        }
    }
}
