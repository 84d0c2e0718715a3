//! Service clients: backends that obtain tokens with `client_credentials` (RFC 6749 §4.4).
//! Their tokens carry `sid` = the client id, so deleting the client or rotating its secret
//! refuses every token it holds.

use std::sync::Arc;

use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::{authority::Principal, core::Core};
use crate::{
    error::{Error, Result},
    model::{ServiceClient, now},
    security::{jws::AccessClaims, random},
};

/// A client as listed, with its secret only when just created or rotated.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClientInfo {
    pub id: Uuid,
    pub name: String,
    pub roles: Vec<String>,
    pub created_at: u64,
    /// Shown once.
    pub secret: Option<String>,
}

impl ClientInfo {
    fn of(c: &ServiceClient, secret: Option<String>) -> Self {
        Self { id: c.id, name: c.name.clone(), roles: c.roles.clone(), created_at: c.created_at, secret }
    }
}

/// Service clients and their `client_credentials` tokens.
pub struct Clients {
    core: Arc<Core>,
}

impl Clients {
    pub(super) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Needs `clients:write` and every permission of the client's roles.
    pub async fn create(&self, by: &Principal, name: &str, roles: Vec<String>) -> Result<ClientInfo> {
        let authority = self.core.authority(by, "clients:write")?;
        let name = name.trim().to_owned();
        if name.is_empty() || name.len() > 64 {
            return Err(Error::invalid("name", "invalid_name", "a client name is 1-64 characters"));
        }
        let roles = if roles.is_empty() { vec!["user".to_string()] } else { roles };
        self.core.check_roles_exist(&roles)?;
        authority.may_assign(&roles)?;
        let secret = random::new_token();
        let client = ServiceClient {
            id: Uuid::now_v7(),
            name,
            roles,
            secret_hash: random::token_hash(&secret).to_vec(),
            created_at: now(),
            secret_rotated_at: now(),
            authz_gen: 0,
        };
        let c = client.clone();
        self.core
            .db(move |s| {
                s.write(|tx| {
                    tx.put_client(&c)?;
                    let details = serde_json::json!({"client_id": c.id, "name": c.name, "roles": c.roles});
                    tx.audit("client.created", None, None, details)?;
                    Ok(())
                })
            })
            .await?;
        Ok(ClientInfo::of(&client, Some(secret)))
    }

    pub async fn list(&self, by: &Principal) -> Result<Vec<ClientInfo>> {
        self.core.authority(by, "clients:read")?;
        let clients = self.core.db(|s| s.read(|tx| tx.clients().map_err(Error::from))).await?;
        Ok(clients.iter().map(|c| ClientInfo::of(c, None)).collect())
    }

    /// A new secret; the old one and every token issued with it stop working. Whoever gets the
    /// secret gets the client's powers, so the caller must hold them all.
    pub async fn rotate_secret(&self, by: &Principal, id: Uuid) -> Result<ClientInfo> {
        let authority = self.core.authority(by, "clients:write")?;
        let secret = random::new_token();
        let hash = random::token_hash(&secret).to_vec();
        let client = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let mut c = tx.client(id)?.ok_or(Error::NotFound("client"))?;
                    authority.may_change(&c.roles)?;
                    c.secret_hash = hash;
                    c.secret_rotated_at = tx.now();
                    // Tokens minted with the old secret are refused, even one signed after this returns.
                    tx.bump_authz(id, &mut c.authz_gen)?;
                    tx.put_client(&c)?;
                    tx.audit("client.secret_rotated", None, None, serde_json::json!({"client_id": id}))?;
                    Ok(c)
                })
            })
            .await?;
        Ok(ClientInfo::of(&client, Some(secret)))
    }

    pub async fn delete(&self, by: &Principal, id: Uuid) -> Result<()> {
        let authority = self.core.authority(by, "clients:write")?;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let c = tx.client(id)?.ok_or(Error::NotFound("client"))?;
                    authority.may_change(&c.roles)?;
                    tx.delete_client(id)?;
                    // A client's tokens carry its id as their session.
                    tx.revoke_session(id)?;
                    tx.audit("client.deleted", None, None, serde_json::json!({"client_id": id}))?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    /// `client_credentials`: a token for the client's roles. Unknown client and wrong secret
    /// give the same answer.
    pub async fn token(&self, client_id: &str, secret: &str) -> Result<(String, u64)> {
        let id = Uuid::parse_str(client_id.trim()).ok();
        let (client, roles) = match id {
            Some(id) => self.core.db(move |s| s.read(|tx| Ok((tx.client(id)?, tx.roles()?)))).await?,
            None => (None, Vec::new()),
        };
        let presented = random::token_hash(secret);
        let stored = client.as_ref().map(|c| c.secret_hash.clone()).unwrap_or_else(|| vec![0u8; 32]);
        let Some(client) = client.filter(|_| bool::from(presented.as_slice().ct_eq(&stored))) else {
            self.core.audit_later(self.core.audit_event(
                "client.auth_failed",
                false,
                None,
                None,
                serde_json::json!({"client_id": client_id.chars().take(64).collect::<String>()}),
            ));
            return Err(Error::InvalidClient);
        };
        let t = now();
        let ttl = self.core.cfg.tokens.access_ttl.as_secs();
        let claims = AccessClaims {
            iss: self.core.cfg.tokens.issuer.clone(),
            aud: self.core.cfg.tokens.audience.clone(),
            sub: client.id,
            exp: t + ttl,
            iat: t,
            nbf: t,
            jti: Uuid::now_v7(),
            sid: client.id,
            roles: client.roles.clone(),
            preferred_username: None,
            permissions: self
                .core
                .cfg
                .tokens
                .include_permissions
                .then(|| crate::model::granted_permissions(&roles, &client.roles)),
            client_id: Some(client.id),
            authz_gen: client.authz_gen,
            amr: Vec::new(),
            auth_time: None,
            email_verified: None,
        };
        let token = self.core.key_ring().active.sign(&claims).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((token, ttl))
    }
}
