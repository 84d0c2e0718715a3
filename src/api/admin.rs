//! `/v1/admin/*` and `/v1/authz/check`: operators' API. Every operation states the permission it
//! needs; without it the answer is 403 `insufficient_permission`.

use super::fields::{Bounded, EmailField, PhoneField, UsernameField};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::Password,
};
use uuid::Uuid;

use super::{
    auth_scheme::Caller,
    body::JsonBody,
    problem::ApiError,
    views::{AccountStatus, ApiTags, AuditEventResponse, SessionResponse, UserResponse},
};
use crate::{
    model::{Role, rfc3339},
    service::{AuthService, KeyInfo, NewAccount, UserFilter, UserPatch, audit::AuditFilter},
};

pub struct AdminApi;

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum Created<T: poem_openapi::types::ToJSON + Send + Sync> {
    /// Created.
    #[oai(status = 201)]
    Created(Json<T>),
}

/// A page of users.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct UserPageResponse {
    users: Vec<UserResponse>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<Uuid>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct CreateUserRequest {
    email: Option<EmailField>,
    phone: Option<PhoneField>,
    username: Option<UsernameField>,
    /// Without one the user cannot sign in until a password is set.
    #[oai(validator(max_length = 4096))]
    password: Option<Password>,
    /// Default: `["user"]`.
    #[oai(validator(max_items = 20))]
    roles: Option<Vec<String>>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct PatchUserRequest {
    email: Option<EmailField>,
    phone: Option<PhoneField>,
    username: Option<UsernameField>,
    #[oai(validator(max_items = 20))]
    roles: Option<Vec<String>>,
    status: Option<AccountStatus>,
    /// Ask the user to change their password at their next sign-in.
    force_password_reset: Option<bool>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RoleResponse {
    name: String,
    permissions: Vec<String>,
    builtin: bool,
    /// Members must have a second factor.
    require_mfa: bool,
}

impl From<Role> for RoleResponse {
    fn from(r: Role) -> Self {
        Self { name: r.name, permissions: r.permissions, builtin: r.builtin, require_mfa: r.require_mfa }
    }
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct CreateRoleRequest {
    /// 2–32 characters of `a-z 0-9 _ -`.
    #[oai(validator(pattern = r"^[a-z0-9_-]{2,32}$"))]
    name: String,
    /// e.g. `users:read`, `billing:*`, `*`.
    #[oai(validator(max_items = 100))]
    permissions: Vec<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ChangeRoleRequest {
    #[oai(default, validator(max_items = 100))]
    grant: Vec<String>,
    #[oai(default, validator(max_items = 100))]
    revoke: Vec<String>,
    /// Members must have a second factor; without one, login only lets them enrol it.
    require_mfa: Option<bool>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct KeyResponse {
    kid: String,
    alg: String,
    /// `active`, `retiring` or `retired`.
    state: String,
    created_at: String,
    #[oai(skip_serializing_if_is_none)]
    retire_at: Option<String>,
}

impl From<KeyInfo> for KeyResponse {
    fn from(k: KeyInfo) -> Self {
        Self {
            kid: k.kid,
            alg: k.alg,
            state: k.state,
            created_at: rfc3339(k.created_at),
            retire_at: k.retire_at.map(rfc3339),
        }
    }
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct AuthzRequest {
    /// The token to judge; without it, the caller's own. Judging another token needs
    /// `tokens:introspect`.
    #[oai(validator(max_length = 8192))]
    token: Option<String>,
    /// One permission, e.g. `billing:refund`.
    #[oai(validator(pattern = r"^[a-z0-9_.-]{1,64}:[a-z0-9_.-]{1,64}$"))]
    permission: String,
    /// The resource's owner: owners are allowed.
    resource_owner: Option<Uuid>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AuthzResponse {
    allowed: bool,
    reason: String,
}

/// A page of audit events, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AuditPageResponse {
    events: Vec<AuditEventResponse>,
    /// Pass as `cursor` for older events; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<Uuid>,
}

/// How an audited action ended.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct CreateClientRequest {
    /// 1–64 characters.
    #[oai(validator(min_length = 1, max_length = 64))]
    name: String,
    /// The roles of its own `client_credentials` tokens. Default: `["user"]`. Give e.g. a role
    /// with `tokens:introspect` to a backend that checks tokens.
    #[oai(default)]
    roles: Vec<String>,
    /// Where authorization responses may go, compared exactly: https, http on loopback only,
    /// or an app's reverse-domain scheme. None: the client cannot sign users in.
    #[oai(default, validator(max_items = 10))]
    redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to.
    #[oai(default, validator(max_items = 10))]
    post_logout_redirect_uris: Vec<String>,
    /// Receives back-channel logout tokens.
    #[oai(validator(max_length = 2000))]
    backchannel_logout_uri: Option<String>,
    /// The scopes it may ask for (`openid`, `profile`, `email`, `phone`, `roles`); all when
    /// left out.
    #[oai(default, validator(max_items = 5))]
    scopes: Vec<String>,
    /// Users are not asked to consent.
    #[oai(default)]
    trusted: bool,
    /// Authorization requests must be pushed first (RFC 9126).
    #[oai(default)]
    require_par: bool,
    /// `client_secret_basic` (default), `client_secret_post`, or `none` for a public client
    /// (no secret; PKCE required).
    #[oai(validator(max_length = 32))]
    token_endpoint_auth_method: Option<String>,
    /// `RS256` (default), `ES256` or `EdDSA`.
    #[oai(validator(max_length = 8))]
    id_token_signed_response_alg: Option<String>,
}

/// A client: a relying party, a backend with `client_credentials`, or both.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ClientResponse {
    client_id: Uuid,
    name: String,
    roles: Vec<String>,
    created_at: String,
    /// Only right after creation or rotation; never for a public client.
    #[oai(skip_serializing_if_is_none)]
    client_secret: Option<String>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    #[oai(skip_serializing_if_is_none)]
    backchannel_logout_uri: Option<String>,
    scopes: Vec<String>,
    trusted: bool,
    require_par: bool,
    token_endpoint_auth_method: String,
    #[oai(skip_serializing_if_is_none)]
    id_token_signed_response_alg: Option<String>,
}

impl From<crate::service::ServiceClientInfo> for ClientResponse {
    fn from(c: crate::service::ServiceClientInfo) -> Self {
        Self {
            client_id: c.client_id,
            name: c.name,
            roles: c.roles,
            created_at: rfc3339(c.created_at),
            client_secret: c.client_secret,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            backchannel_logout_uri: c.backchannel_logout_uri,
            scopes: c.scopes,
            trusted: c.trusted,
            require_par: c.require_par,
            token_endpoint_auth_method: c.token_endpoint_auth_method,
            id_token_signed_response_alg: c.id_token_signed_response_alg,
        }
    }
}

/// A webhook endpoint.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct WebhookResponse {
    #[oai(skip_serializing_if_is_none)]
    id: Option<Uuid>,
    url: String,
    events: Vec<String>,
    /// Only right after adding, when generated.
    #[oai(skip_serializing_if_is_none)]
    secret: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct AddWebhookRequest {
    #[oai(validator(max_length = 2000))]
    url: String,
    /// Event types, e.g. `user.logged_out`, `refresh.*`, `*`.
    events: Vec<String>,
    /// `whsec_<base64>`; generated when left out.
    #[oai(validator(max_length = 200))]
    secret: Option<String>,
}

impl From<crate::service::WebhookInfo> for WebhookResponse {
    fn from(w: crate::service::WebhookInfo) -> Self {
        Self { id: w.id, url: w.url, events: w.events, secret: w.secret }
    }
}

#[OpenApi(prefix_path = "/v1", tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users (needs `users:read`)
    ///
    /// Oldest first, `limit` per page (1–200, default 50); filter by `role`, `status` and a
    /// `q` prefix of email, phone or username.
    #[oai(path = "/admin/users", method = "get", operation_id = "admin_list_users")]
    #[allow(clippy::too_many_arguments)]
    async fn list_users(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        role: Query<Option<String>>,
        status: Query<Option<AccountStatus>>,
        q: Query<Option<String>>,
    ) -> Result<Json<UserPageResponse>, ApiError> {
        let status = status.0.map(Into::into);
        let filter = UserFilter { role: role.0, status, search: q.0 };
        let page =
            svc.accounts.list_users_page(&caller.principal(), cursor.0, limit.0.unwrap_or(50) as usize, filter).await?;
        Ok(Json(UserPageResponse {
            users: page.users.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Create a user (needs `users:write`)
    #[oai(path = "/admin/users", method = "post", operation_id = "admin_create_user")]
    async fn create_user(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        body: JsonBody<CreateUserRequest>,
    ) -> Result<Created<UserResponse>, ApiError> {
        let b = body.0;
        let user = svc
            .accounts
            .create_user(
                &caller.principal(),
                NewAccount {
                    email: b.email.map(Bounded::into_inner),
                    phone: b.phone.map(Bounded::into_inner),
                    username: b.username.map(Bounded::into_inner),
                    password: b.password.map(|p| p.0),
                    roles: b.roles.unwrap_or_default(),
                    locale: None,
                },
            )
            .await?;
        Ok(Created::Created(Json(user.into())))
    }

    /// Get a user (needs `users:read`)
    #[oai(path = "/admin/users/:id", method = "get", operation_id = "admin_get_user")]
    async fn get_user(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<Json<UserResponse>, ApiError> {
        Ok(Json(svc.accounts.admin_user(&caller.principal(), id.0).await?.as_ref().into()))
    }

    /// Change a user (needs `users:write`; `users:disable` suffices to change only `status`)
    ///
    /// New roles refuse the user's current tokens until refreshed; disabling ends every
    /// session. The last active admin cannot be demoted or disabled (409 `last_admin`).
    #[oai(path = "/admin/users/:id", method = "patch", operation_id = "admin_patch_user")]
    async fn patch_user(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
        body: JsonBody<PatchUserRequest>,
    ) -> Result<Json<UserResponse>, ApiError> {
        let b = body.0;
        let status = b.status.map(Into::into);
        let patch = UserPatch {
            email: b.email.map(Bounded::into_inner),
            phone: b.phone.map(Bounded::into_inner),
            username: b.username.map(Bounded::into_inner),
            roles: b.roles,
            status,
            password_reset_required: b.force_password_reset,
        };
        Ok(Json(svc.accounts.patch_user(&caller.principal(), id.0, patch).await?.into()))
    }

    /// Delete a user (needs `users:write`)
    #[oai(path = "/admin/users/:id", method = "delete", operation_id = "admin_delete_user")]
    async fn delete_user(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        svc.accounts.delete_user(&caller.principal(), &id.0.to_string()).await?;
        Ok(NoContent::Done)
    }

    /// Reset a user's second factors (needs `users:write`)
    ///
    /// Their TOTP and recovery codes go; they sign in with the password alone until they enrol
    /// again.
    #[oai(path = "/admin/users/:id/mfa", method = "delete", operation_id = "admin_reset_mfa")]
    async fn reset_mfa(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<Json<UserResponse>, ApiError> {
        Ok(Json(svc.factors.reset_mfa(&caller.principal(), &id.0.to_string()).await?.into()))
    }

    /// A user's sessions (needs `users:read`)
    #[oai(path = "/admin/users/:id/sessions", method = "get", operation_id = "admin_list_sessions")]
    async fn list_sessions(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Vec<SessionResponse>>, ApiError> {
        let sessions = svc.accounts.admin_sessions(&caller.principal(), id.0).await?;
        Ok(Json(sessions.into_iter().map(|s| SessionResponse::new(s, caller.0.session_id)).collect()))
    }

    /// End every session of a user (needs `sessions:revoke`)
    #[oai(path = "/admin/users/:id/sessions", method = "delete", operation_id = "admin_revoke_sessions")]
    async fn revoke_sessions(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        svc.accounts.admin_end_sessions(&caller.principal(), id.0).await?;
        Ok(NoContent::Done)
    }

    /// End one session of a user (needs `sessions:revoke`)
    #[oai(path = "/admin/users/:id/sessions/:sid", method = "delete", operation_id = "admin_revoke_session")]
    async fn revoke_session(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
        sid: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        svc.accounts.admin_end_session(&caller.principal(), id.0, sid.0).await?;
        Ok(NoContent::Done)
    }

    /// List roles (needs `roles:read`)
    #[oai(path = "/admin/roles", method = "get", operation_id = "admin_list_roles")]
    async fn list_roles(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
    ) -> Result<Json<Vec<RoleResponse>>, ApiError> {
        Ok(Json(svc.roles.list(&caller.principal()).await?.into_iter().map(Into::into).collect()))
    }

    /// Create a role (needs `roles:write`)
    #[oai(path = "/admin/roles", method = "post", operation_id = "admin_create_role")]
    async fn create_role(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        body: JsonBody<CreateRoleRequest>,
    ) -> Result<Created<RoleResponse>, ApiError> {
        Ok(Created::Created(Json(
            svc.roles.create(&caller.principal(), &body.0.name, body.0.permissions).await?.into(),
        )))
    }

    /// Grant or revoke permissions of a role (needs `roles:write`)
    ///
    /// Takes effect on the next request of every holder. `admin` always keeps `*`.
    #[oai(path = "/admin/roles/:name", method = "patch", operation_id = "admin_change_role")]
    async fn change_role(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        name: Path<String>,
        body: JsonBody<ChangeRoleRequest>,
    ) -> Result<Json<RoleResponse>, ApiError> {
        let b = body.0;
        let mut role = svc.roles.change(&caller.principal(), &name.0, b.grant, b.revoke).await?;
        if let Some(required) = b.require_mfa {
            role = svc.roles.set_mfa(&caller.principal(), &name.0, required).await?;
        }
        Ok(Json(role.into()))
    }

    /// Delete a custom role (needs `roles:write`)
    ///
    /// Refused with 409 `role_in_use` while users hold it, unless `force=true`.
    #[oai(path = "/admin/roles/:name", method = "delete", operation_id = "admin_delete_role")]
    async fn delete_role(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        name: Path<String>,
        force: Query<Option<bool>>,
    ) -> Result<NoContent, ApiError> {
        svc.roles.delete(&caller.principal(), &name.0, force.0.unwrap_or(false)).await?;
        Ok(NoContent::Done)
    }

    /// List signing keys (needs `keys:read`)
    #[oai(path = "/admin/keys", method = "get", operation_id = "admin_list_keys")]
    async fn list_keys(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
    ) -> Result<Json<Vec<KeyResponse>>, ApiError> {
        Ok(Json(svc.keys.list(&caller.principal()).await?.into_iter().map(Into::into).collect()))
    }

    /// Rotate the signing key (needs `keys:rotate`)
    #[oai(path = "/admin/keys/rotate", method = "post", operation_id = "admin_rotate_keys")]
    async fn rotate_keys(&self, svc: Data<&Arc<AuthService>>, caller: Caller) -> Result<Json<KeyResponse>, ApiError> {
        Ok(Json(svc.keys.rotate(&caller.principal()).await?.into()))
    }

    /// The audit log (needs `audit:read`)
    ///
    /// Newest first; filter by `user` (subject id), `event` (exact, or a prefix such as
    /// `user`), `outcome` (`success`/`failure`), `since`/`until` (RFC 3339 UTC such as
    /// `2026-01-31T23:00:00Z`, or an age such as `24h`). `limit` 1–500 (default 100).
    #[oai(path = "/admin/audit", method = "get", operation_id = "admin_audit")]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        user: Query<Option<Uuid>>,
        event: Query<Option<String>>,
        outcome: Query<Option<Outcome>>,
        #[oai(validator(
            pattern = r"^((19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z|[1-9][0-9]{0,5}[smhdw])$"
        ))]
        since: Query<Option<String>>,
        #[oai(validator(
            pattern = r"^((19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z|[1-9][0-9]{0,5}[smhdw])$"
        ))]
        until: Query<Option<String>>,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
    ) -> Result<Json<AuditPageResponse>, ApiError> {
        let filter = AuditFilter {
            user: user.0,
            event: event.0,
            outcome: outcome.0.map(|o| o.as_str().to_owned()),
            since_ms: since.0.as_deref().map(|s| crate::service::audit::parse_instant("since", s)).transpose()?,
            until_ms: until.0.as_deref().map(|s| crate::service::audit::parse_instant("until", s)).transpose()?,
        };
        let limit = limit.0.unwrap_or(100) as usize;
        let mut events = svc.audit.events(&caller.principal(), filter, cursor.0, limit + 1).await?;
        let next_cursor = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| e.id)
        } else {
            None
        };
        Ok(Json(AuditPageResponse { events: events.into_iter().map(Into::into).collect(), next_cursor }))
    }

    /// List clients (needs `clients:read`)
    #[oai(path = "/admin/clients", method = "get", operation_id = "admin_list_clients")]
    async fn list_clients(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
    ) -> Result<Json<Vec<ClientResponse>>, ApiError> {
        Ok(Json(svc.clients.list(&caller.principal()).await?.into_iter().map(Into::into).collect()))
    }

    /// Create a client (needs `clients:write`)
    ///
    /// The `client_secret` is shown in this response only; authd keeps just its hash.
    #[oai(path = "/admin/clients", method = "post", operation_id = "admin_create_client")]
    async fn create_client(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        body: JsonBody<CreateClientRequest>,
    ) -> Result<Created<ClientResponse>, ApiError> {
        let b = body.0;
        let new = crate::service::NewClient {
            name: b.name,
            roles: b.roles,
            redirect_uris: b.redirect_uris,
            post_logout_redirect_uris: b.post_logout_redirect_uris,
            backchannel_logout_uri: b.backchannel_logout_uri,
            scopes: b.scopes,
            trusted: b.trusted,
            require_par: b.require_par,
            token_endpoint_auth_method: b.token_endpoint_auth_method,
            id_token_signed_response_alg: b.id_token_signed_response_alg,
        };
        Ok(Created::Created(Json(svc.clients.create(&caller.principal(), new).await?.into())))
    }

    /// Rotate a client's secret (needs `clients:write`)
    ///
    /// The old secret and every token obtained with it stop working at once.
    #[oai(path = "/admin/clients/:id/rotate-secret", method = "post", operation_id = "admin_rotate_client_secret")]
    async fn rotate_client(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<Json<ClientResponse>, ApiError> {
        Ok(Json(svc.clients.rotate_secret(&caller.principal(), id.0).await?.into()))
    }

    /// One client (needs `clients:read`)
    #[oai(path = "/admin/clients/:id", method = "get", operation_id = "admin_get_client")]
    async fn get_client(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<Json<ClientResponse>, ApiError> {
        Ok(Json(svc.clients.show(&caller.principal(), id.0).await?.into()))
    }

    /// Delete a client (needs `clients:write`)
    #[oai(path = "/admin/clients/:id", method = "delete", operation_id = "admin_delete_client")]
    async fn delete_client(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        svc.clients.delete(&caller.principal(), id.0).await?;
        Ok(NoContent::Done)
    }

    /// List webhook endpoints (needs `webhooks:read`)
    ///
    /// Endpoints from the config file have no `id` (change them there).
    #[oai(path = "/admin/webhooks", method = "get", operation_id = "admin_list_webhooks")]
    async fn list_webhooks(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
    ) -> Result<Json<Vec<WebhookResponse>>, ApiError> {
        Ok(Json(svc.webhooks.list(&caller.principal()).await?.into_iter().map(Into::into).collect()))
    }

    /// Add a webhook endpoint (needs `webhooks:write`)
    ///
    /// Without `secret`, one is generated and shown in this response only.
    #[oai(path = "/admin/webhooks", method = "post", operation_id = "admin_add_webhook")]
    async fn add_webhook(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        body: JsonBody<AddWebhookRequest>,
    ) -> Result<Created<WebhookResponse>, ApiError> {
        let b = body.0;
        Ok(Created::Created(Json(svc.webhooks.add(&caller.principal(), &b.url, b.events, b.secret).await?.into())))
    }

    /// Remove a webhook endpoint added at run time (needs `webhooks:write`)
    #[oai(path = "/admin/webhooks/:id", method = "delete", operation_id = "admin_delete_webhook")]
    async fn delete_webhook(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        svc.webhooks.delete(&caller.principal(), id.0).await?;
        Ok(NoContent::Done)
    }

    /// May a token do something? (any signed-in caller)
    ///
    /// Allowed when a role of the token grants `permission` (wildcards `users:*` and `*`
    /// count), or when the token's subject is `resource_owner`. Judging a token other than the
    /// caller's own needs `tokens:introspect`.
    #[oai(path = "/authz/check", method = "post", tag = "ApiTags::Tokens", operation_id = "authz_check")]
    async fn authz_check(
        &self,
        svc: Data<&Arc<AuthService>>,
        caller: Caller,
        body: JsonBody<AuthzRequest>,
    ) -> Result<Json<AuthzResponse>, ApiError> {
        let b = body.0;
        let d = svc.roles.authz_check(&caller.0, b.token.as_deref(), &b.permission, b.resource_owner).await?;
        Ok(Json(AuthzResponse { allowed: d.allowed, reason: d.reason }))
    }
}
