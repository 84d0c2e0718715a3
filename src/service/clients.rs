//! Clients: relying parties that sign users in through authd (OpenID Connect), and backends that
//! obtain tokens of their own with `client_credentials` (RFC 6749 §4.4); one client may be both.
//! A backend's tokens carry `sid` = the client id, so deleting the client or rotating its secret
//! refuses every token it holds.

use std::sync::Arc;

use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::{authority::Principal, core::Core};
use crate::{
    config::SigningAlgorithm,
    error::{Error, Result},
    model::{AuthMethod, Client, SCOPES, now},
    security::{jws::AccessClaims, random},
};

/// A client as listed, with its secret only when just created or rotated.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClientInfo {
    pub client_id: Uuid,
    pub name: String,
    pub roles: Vec<String>,
    pub created_at: u64,
    /// Shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub scopes: Vec<String>,
    pub trusted: bool,
    pub require_par: bool,
    pub token_endpoint_auth_method: String,
    pub id_token_signed_response_alg: Option<String>,
}

impl ClientInfo {
    fn of(c: &Client, secret: Option<String>) -> Self {
        Self {
            client_id: c.id,
            name: c.name.clone(),
            roles: c.roles.clone(),
            created_at: c.created_at,
            client_secret: secret,
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            scopes: c.scopes.clone(),
            trusted: c.trusted,
            require_par: c.require_par,
            token_endpoint_auth_method: c.token_endpoint_auth_method.as_str().into(),
            id_token_signed_response_alg: c.id_token_signed_response_alg.map(|a| a.as_str().to_owned()),
        }
    }
}

/// What a new client is; every field but the name may be left out.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NewClient {
    pub name: String,
    pub roles: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    /// Every scope when empty.
    pub scopes: Vec<String>,
    pub trusted: bool,
    pub require_par: bool,
    /// `client_secret_basic` when unset.
    pub token_endpoint_auth_method: Option<String>,
    pub id_token_signed_response_alg: Option<String>,
}

/// An administrator's change to a client's addresses and flags.
#[derive(Debug, Clone, Default)]
pub struct ClientEdit {
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub trusted: bool,
    pub require_par: bool,
}

/// How a caller of the token, PAR, revocation or introspection endpoint presented itself.
#[derive(Debug, Clone)]
pub struct Presented {
    pub client_id: String,
    pub secret: Option<String>,
    /// As `client_secret_basic`, `client_secret_post` or `none` (an id only).
    pub method: AuthMethod,
}

/// Clients and their `client_credentials` tokens.
pub struct Clients {
    core: Arc<Core>,
}

const MAX_URIS: usize = 10;

/// A URI a browser may be sent to: https anywhere, http only to this machine (RFC 8252 §7.3),
/// or an app's private scheme (`com.example.app:/cb`, RFC 8252 §7.1); never a fragment.
fn check_redirect(field: &str, uri: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid(field, "invalid_redirect_uri", why));
    if uri.len() > 2000 {
        return bad("at most 2000 characters");
    }
    let Ok(u) = url::Url::parse(uri) else { return bad("must be an absolute URI") };
    if u.fragment().is_some() {
        return bad("must not hold a fragment");
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" if matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) => Ok(()),
        "http" => bad("http only to localhost, 127.0.0.1 or [::1]; use https"),
        s if s.contains('.') => Ok(()),
        _ => bad("https, loopback http, or an app's reverse-domain scheme"),
    }
}

fn validated(new: NewClient, roles_exist: impl Fn(&[String]) -> Result<()>) -> Result<Client> {
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Error::invalid("name", "invalid_name", "a client name is 1-64 characters"));
    }
    if new.redirect_uris.len() > MAX_URIS || new.post_logout_redirect_uris.len() > MAX_URIS {
        return Err(Error::invalid("redirect_uris", "too_many", "at most 10 URIs"));
    }
    for u in &new.redirect_uris {
        check_redirect("redirect_uris", u)?;
    }
    for u in &new.post_logout_redirect_uris {
        check_redirect("post_logout_redirect_uris", u)?;
    }
    if let Some(u) = &new.backchannel_logout_uri {
        let ok = url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "https" | "http") && p.fragment().is_none());
        if !ok || u.len() > 2000 {
            return Err(Error::invalid("backchannel_logout_uri", "invalid_uri", "an http(s) URL without a fragment"));
        }
    }
    let method = match new.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::ClientSecretBasic,
        Some(m) => AuthMethod::parse(m).ok_or_else(|| {
            Error::invalid(
                "token_endpoint_auth_method",
                "invalid_auth_method",
                "client_secret_basic, client_secret_post or none",
            )
        })?,
    };
    if method == AuthMethod::None && new.redirect_uris.is_empty() {
        return Err(Error::invalid("redirect_uris", "required", "a public client signs users in: give a redirect URI"));
    }
    let alg =
        match new.id_token_signed_response_alg.as_deref() {
            None => None,
            Some(a) => Some(SigningAlgorithm::parse(a).ok_or_else(|| {
                Error::invalid("id_token_signed_response_alg", "invalid_alg", "RS256, ES256 or EdDSA")
            })?),
        };
    let mut scopes = new.scopes;
    if scopes.is_empty() {
        scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
    }
    if let Some(s) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(Error::invalid(
            "scopes",
            "unknown_scope",
            format!("unknown scope {s}; known: {}", SCOPES.join(" ")),
        ));
    }
    scopes.dedup();
    let roles = if new.roles.is_empty() { vec!["user".to_string()] } else { new.roles };
    roles_exist(&roles)?;
    Ok(Client {
        id: Uuid::now_v7(),
        name,
        roles,
        secret_hash: Vec::new(),
        created_at: now(),
        secret_rotated_at: now(),
        authz_gen: 0,
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        backchannel_logout_uri: new.backchannel_logout_uri,
        scopes,
        trusted: new.trusted,
        require_par: new.require_par,
        token_endpoint_auth_method: method,
        id_token_signed_response_alg: alg,
    })
}

impl Clients {
    pub(super) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Needs `clients:write` and every permission of the client's roles.
    pub async fn create(&self, by: &Principal, new: NewClient) -> Result<ClientInfo> {
        let authority = self.core.authority(by, "clients:write")?;
        let mut client = validated(new, |roles| self.core.check_roles_exist(roles))?;
        authority.may_assign(&client.roles)?;
        // A trusted client signs in whoever visits it without asking them, admins included:
        // only someone holding everything an admin holds may make one.
        if client.trusted {
            authority.may_assign(&["admin".to_owned()])?;
        }
        let secret = (!client.is_public()).then(random::new_token);
        client.secret_hash = secret.as_deref().map(|s| random::token_hash(s).to_vec()).unwrap_or_default();
        let c = client.clone();
        self.core
            .db(move |s| {
                s.write(|tx| {
                    tx.put_client(&c)?;
                    let details = serde_json::json!({"client_id": c.id, "name": c.name, "roles": c.roles,
                        "redirect_uris": c.redirect_uris, "trusted": c.trusted});
                    tx.audit("client.created", None, None, details)?;
                    Ok(())
                })
            })
            .await?;
        Ok(ClientInfo::of(&client, secret))
    }

    pub async fn list(&self, by: &Principal) -> Result<Vec<ClientInfo>> {
        self.core.authority(by, "clients:read")?;
        let clients = self.core.db(|s| s.read(|tx| tx.clients().map_err(Error::from))).await?;
        Ok(clients.iter().map(|c| ClientInfo::of(c, None)).collect())
    }

    pub async fn show(&self, by: &Principal, id: Uuid) -> Result<ClientInfo> {
        self.core.authority(by, "clients:read")?;
        let c = self.get(id).await?.ok_or(Error::NotFound("client"))?;
        Ok(ClientInfo::of(&c, None))
    }

    /// A client as stored, for the protocol endpoints.
    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<Client>> {
        if let Some(c) = self.core.store.cached_client(id) {
            return Ok(Some(Client::clone(&c)));
        }
        let c = self.core.db(move |s| s.load_client(id).map_err(Error::from)).await?;
        Ok(c.map(|c| Client::clone(&c)))
    }

    /// The client by the id it presented, if that is one of ours.
    pub(crate) async fn find(&self, client_id: &str) -> Result<Option<Client>> {
        match Uuid::parse_str(client_id.trim()) {
            Ok(id) if client_id.len() <= 64 => self.get(id).await,
            _ => Ok(None),
        }
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
                    if c.is_public() {
                        return Err(Error::invalid("client_id", "public_client", "a public client has no secret"));
                    }
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

    /// Replaces a client's redirect URIs and flags, under the rules of creating one. Needs
    /// `clients:write` and every permission of the client's roles (and an admin's, to make it
    /// trusted).
    pub async fn edit(&self, by: &Principal, id: Uuid, edit: ClientEdit) -> Result<ClientInfo> {
        let authority = self.core.authority(by, "clients:write")?;
        if edit.redirect_uris.len() > MAX_URIS || edit.post_logout_redirect_uris.len() > MAX_URIS {
            return Err(Error::invalid("redirect_uris", "too_many", "at most 10 URIs"));
        }
        for u in &edit.redirect_uris {
            check_redirect("redirect_uris", u)?;
        }
        for u in &edit.post_logout_redirect_uris {
            check_redirect("post_logout_redirect_uris", u)?;
        }
        let client = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let mut c = tx.client(id)?.ok_or(Error::NotFound("client"))?;
                    authority.may_change(&c.roles)?;
                    // Where its codes go, and whether it asks users at all, decide whose accounts
                    // a client reaches (consents given stay with it): an admin's call, as making
                    // a trusted client is.
                    let moved = c.redirect_uris != edit.redirect_uris
                        || c.post_logout_redirect_uris != edit.post_logout_redirect_uris;
                    if edit.trusted || c.trusted || moved {
                        authority.may_assign(&["admin".to_owned()])?;
                    }
                    if c.is_public() && edit.redirect_uris.is_empty() {
                        return Err(Error::invalid(
                            "redirect_uris",
                            "required",
                            "a public client signs users in: give a redirect URI",
                        ));
                    }
                    c.redirect_uris = edit.redirect_uris;
                    c.post_logout_redirect_uris = edit.post_logout_redirect_uris;
                    c.trusted = edit.trusted;
                    c.require_par = edit.require_par;
                    tx.put_client(&c)?;
                    let details = serde_json::json!({"client_id": id, "redirect_uris": c.redirect_uris,
                        "trusted": c.trusted, "require_par": c.require_par});
                    tx.audit("client.updated", None, None, details)?;
                    Ok(c)
                })
            })
            .await?;
        Ok(ClientInfo::of(&client, None))
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

    /// The client that presented these credentials. A relying party must use the method it
    /// registered; a backend without redirect URIs may use either secret method. Unknown
    /// client and wrong secret give the same answer.
    pub async fn authenticate(&self, p: &Presented) -> Result<Client> {
        let client = self.find(&p.client_id).await?;
        let presented = random::token_hash(p.secret.as_deref().unwrap_or_default());
        let stored = client.as_ref().map(|c| c.secret_hash.clone()).filter(|h| !h.is_empty());
        let secret_ok = bool::from(presented.as_slice().ct_eq(stored.as_deref().unwrap_or(&[0u8; 32])));
        let ok = client.as_ref().is_some_and(|c| match (c.token_endpoint_auth_method, p.method) {
            (AuthMethod::None, AuthMethod::None) => p.secret.is_none(),
            (AuthMethod::None, _) | (_, AuthMethod::None) => false,
            (registered, used) => secret_ok && stored.is_some() && (registered == used || c.redirect_uris.is_empty()),
        });
        match client.filter(|_| ok) {
            Some(c) => Ok(c),
            None => {
                self.core.audit_later(self.core.audit_event(
                    "client.auth_failed",
                    false,
                    None,
                    None,
                    serde_json::json!({"client_id": p.client_id.chars().take(64).collect::<String>()}),
                ));
                Err(Error::InvalidClient)
            }
        }
    }

    /// `client_credentials`: a token for the client's roles.
    pub async fn token(&self, p: &Presented) -> Result<(String, u64)> {
        let client = self.authenticate(p).await?;
        if client.is_public() {
            return Err(Error::UnauthorizedClient);
        }
        let roles = self.core.db(move |s| s.read(|tx| tx.roles().map_err(Error::from))).await?;
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
            azp: None,
            scope: None,
        };
        let token = self.core.key_ring().active.sign(&claims).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((token, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_http_or_an_app_scheme() {
        for ok in ["https://app.example/cb", "http://127.0.0.1:8080/cb", "http://localhost/cb", "com.example.app:/cb"] {
            assert!(check_redirect("r", ok).is_ok(), "{ok}");
        }
        for bad in
            ["http://app.example/cb", "https://app.example/cb#x", "/cb", "javascript:alert(1)", "data:text/html,x"]
        {
            assert!(check_redirect("r", bad).is_err(), "{bad}");
        }
    }
}
