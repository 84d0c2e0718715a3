//! The local admin socket: how `authd user …` and `authd keys …` reach a running server, so that
//! its in-memory state (keys, revocations) changes with the database. With the server down the
//! CLI runs the very same [`execute`] against the database directly.

mod protocol;
mod socket;

pub use protocol::{AdminReply, AdminRequest, UserView};
pub use socket::{CallError, bind, call, call_backup, serve};

use crate::{
    model::UserStatus,
    service::{AuthService, NewAccount, Principal},
};

/// Carries out one admin request, audited as done by `cli`.
pub async fn execute(svc: &AuthService, req: AdminRequest) -> AdminReply {
    let ctx = crate::service::audit::AuditContext { actor: Some("cli".into()), ..Default::default() };
    crate::service::audit::with_audit_context(ctx, dispatch(svc, req)).await
}

async fn dispatch(svc: &AuthService, req: AdminRequest) -> AdminReply {
    // Whoever reaches the socket (or the database) is the operator on the host.
    let op = &Principal::Operator;
    let result = match req {
        AdminRequest::UserAdd { email, phone, username, roles, password } => svc
            .accounts
            .create_user(op, NewAccount { email, phone, username, password, roles, locale: None })
            .await
            .map(|u| AdminReply::User(u.into())),
        AdminRequest::UserList => {
            svc.accounts.list_users().await.map(|us| AdminReply::Users(us.into_iter().map(Into::into).collect()))
        }
        AdminRequest::UserShow { who } => match svc.accounts.find_user(&who).await {
            Ok(u) => svc.upstream.admin_identities(op, u.id).await.map(|ids| {
                let mut view = crate::admin_socket::UserView::from(u);
                view.identities = ids.iter().map(|i| format!("{} {}:{}", i.id, i.provider, i.subject)).collect();
                AdminReply::User(view)
            }),
            Err(e) => Err(e),
        },
        AdminRequest::UserUnlink { who, identity } => match svc.accounts.find_user(&who).await {
            Ok(u) => svc.upstream.admin_unlink_identity(op, u.id, identity).await.map(|()| AdminReply::User(u.into())),
            Err(e) => Err(e),
        },
        AdminRequest::UserSetRoles { who, roles } => {
            svc.accounts.set_roles(op, &who, roles).await.map(|u| AdminReply::User(u.into()))
        }
        AdminRequest::UserPasswd { who, password } => {
            svc.accounts.set_password(op, &who, &password).await.map(|u| AdminReply::User(u.into()))
        }
        AdminRequest::UserDisable { who } => {
            svc.accounts.set_status(op, &who, UserStatus::Disabled).await.map(|u| AdminReply::User(u.into()))
        }
        AdminRequest::UserMfaReset { who } => svc.factors.reset_mfa(op, &who).await.map(|u| AdminReply::User(u.into())),
        AdminRequest::UserRecoveryLink { who } => svc.recovery.recovery_link(op, &who).await.map(|(u, link)| {
            AdminReply::Link { user: u.into(), link, expires_in: svc.config().security.recovery_link_ttl.as_secs() }
        }),
        AdminRequest::UserEnable { who } => {
            svc.accounts.set_status(op, &who, UserStatus::Active).await.map(|u| AdminReply::User(u.into()))
        }
        AdminRequest::UserDelete { who } => {
            svc.accounts.delete_user(op, &who).await.map(|u| AdminReply::User(u.into()))
        }
        AdminRequest::Backup => Err(crate::error::Error::Internal("a backup is streamed by the admin socket".into())),
        AdminRequest::ForwardAuthTest { url, method, user, mfa, from } => {
            svc.forward_auth.explain(op, &url, &method, user.as_deref(), mfa, from).await.map(AdminReply::ForwardAuth)
        }
        AdminRequest::KeysList => svc.keys.list(op).await.map(AdminReply::Keys),
        AdminRequest::KeysRotate => svc.keys.rotate(op).await.map(AdminReply::Key),
        AdminRequest::Audit { user, event, outcome, since_ms, before, limit } => {
            let user = match user {
                Some(who) => match svc.accounts.find_user(&who).await {
                    Ok(u) => Some(u.id),
                    // A deleted user's events are still there under their id.
                    Err(e) => match uuid::Uuid::parse_str(&who) {
                        Ok(id) => Some(id),
                        Err(_) => return error_reply(e),
                    },
                },
                None => None,
            };
            let filter = crate::service::audit::AuditFilter { user, event, outcome, since_ms, until_ms: None };
            svc.audit.events(op, filter, before, limit.min(10_000)).await.map(AdminReply::Events)
        }
        AdminRequest::WebhookStatus => svc.webhooks.status(op).await.map(AdminReply::Webhooks),
        AdminRequest::WebhookList => svc.webhooks.list(op).await.map(AdminReply::Endpoints),
        AdminRequest::WebhookAdd { url, events, secret } => {
            svc.webhooks.add(op, &url, events, secret).await.map(AdminReply::Endpoint)
        }
        AdminRequest::WebhookDelete { id } => svc.webhooks.delete(op, id).await.map(|()| AdminReply::Done),
        AdminRequest::ClientAdd { client } => svc.clients.create(op, client).await.map(AdminReply::Client),
        AdminRequest::ClientList => svc.clients.list(op).await.map(AdminReply::Clients),
        AdminRequest::ClientShow { id } => svc.clients.show(op, id).await.map(AdminReply::Client),
        AdminRequest::ClientRemove { id } => svc.clients.delete(op, id).await.map(|()| AdminReply::Done),
        AdminRequest::ClientRotateSecret { id } => svc.clients.rotate_secret(op, id).await.map(AdminReply::Client),
        AdminRequest::RoleList => svc.roles.list(op).await.map(AdminReply::Roles),
        AdminRequest::RoleAdd { name, permissions } => {
            svc.roles.create(op, &name, permissions).await.map(AdminReply::Role)
        }
        AdminRequest::RoleChange { name, grant, revoke } => {
            svc.roles.change(op, &name, grant, revoke).await.map(AdminReply::Role)
        }
        AdminRequest::RoleRequireMfa { name, required } => {
            svc.roles.set_mfa(op, &name, required).await.map(AdminReply::Role)
        }
        AdminRequest::RoleDelete { name, force } => svc.roles.delete(op, &name, force).await.map(AdminReply::Role),
    };
    result.unwrap_or_else(error_reply)
}

fn error_reply(e: crate::error::Error) -> AdminReply {
    let message = match &e {
        crate::error::Error::Invalid(fields) => {
            fields.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; ")
        }
        crate::error::Error::Storage(_) | crate::error::Error::Internal(_) => {
            tracing::error!(error = %e, "admin request failed");
            e.to_string()
        }
        _ => e.to_string(),
    };
    AdminReply::Error { code: e.code().into(), message }
}
