//! The OpenID tokens a relying party reads: ID tokens (OIDC Core §2) and back-channel logout
//! tokens (OIDC Back-Channel Logout §2.4), signed with the client's algorithm, RS256 by default.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::core::Core;
use crate::{
    config::SigningAlgorithm,
    error::{Error, Result},
    model::{Client, Session, User, now},
    security::jws,
};

/// The `events` member that makes a JWT a logout token.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// An ID token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: Uuid,
    pub azp: Uuid,
    pub exp: u64,
    pub iat: u64,
    pub auth_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub acr: String,
    pub amr: Vec<String>,
    /// The browser session (the OP session) the tokens were issued under.
    pub sid: Uuid,
    /// The claims of the granted scopes.
    #[serde(flatten)]
    pub profile: serde_json::Map<String, serde_json::Value>,
}

/// The issuer of ID tokens, discovery and authorization responses: `server.public_url`.
pub(super) fn issuer(core: &Core) -> String {
    core.public_url().trim_end_matches('/').to_owned()
}

/// `1` for one factor, `2` for two.
pub(super) fn acr(amr: &[String]) -> &'static str {
    if crate::model::multi_factor(amr) { "2" } else { "1" }
}

/// The claims the granted `scope` releases (OIDC Core §5.4). A claim asked for by name (§5.5)
/// is released only within a granted scope: the user consented to scopes, nothing more.
pub(super) fn profile_claims(user: &User, scope: &str) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let scopes: Vec<&str> = scope.split(' ').collect();
    let wants = |scope: &str, _claim: &str| scopes.contains(&scope);
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        out.insert(k.to_owned(), v);
    };
    if let Some(email) = &user.email {
        if wants("email", "email") {
            put("email", json!(email));
        }
        if wants("email", "email_verified") {
            put("email_verified", json!(user.email_verified));
        }
    }
    if let Some(phone) = &user.phone {
        if wants("phone", "phone_number") {
            put("phone_number", json!(phone));
        }
        if wants("phone", "phone_number_verified") {
            put("phone_number_verified", json!(user.phone_verified));
        }
    }
    if let Some(name) = &user.username
        && wants("profile", "preferred_username")
    {
        put("preferred_username", json!(name));
    }
    if let Some(name) = &user.display_name
        && wants("profile", "name")
    {
        put("name", json!(name));
    }
    if wants("profile", "updated_at") {
        put("updated_at", json!(user.updated_at.max(user.created_at)));
    }
    if let Some(locale) = user.locale.as_ref().filter(|_| wants("profile", "locale")) {
        put("locale", json!(locale));
    }
    if wants("roles", "roles") {
        put("roles", json!(user.roles));
    }
    out
}

fn signer_failed(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("signing: {e}"))
}

/// An ID token for `client` of the relying-party session `session`.
pub(super) fn mint_id_token(
    core: &Core,
    client: &Client,
    user: &User,
    session: &Session,
    nonce: Option<String>,
) -> Result<String> {
    let t = now();
    let scope = session.scope.as_deref().unwrap_or("openid");
    let claims = IdClaims {
        iss: issuer(core),
        sub: user.id,
        aud: client.id,
        azp: client.id,
        exp: t + core.cfg.tokens.access_ttl.as_secs(),
        iat: t,
        auth_time: session.authenticated_at(),
        nonce,
        acr: acr(&session.amr).to_owned(),
        amr: session.amr.clone(),
        sid: session.parent.unwrap_or(session.id),
        profile: profile_claims(user, scope),
    };
    sign(core, client.id_token_alg(), "JWT", &claims)
}

fn sign<C: Serialize>(core: &Core, alg: SigningAlgorithm, typ: &str, claims: &C) -> Result<String> {
    let ring = core.key_ring();
    let key = ring.signer(alg).ok_or_else(|| signer_failed(format!("no active {} key", alg.as_str())))?;
    key.sign_as(typ, claims).map_err(signer_failed)
}

/// What a queued back-channel logout says; signed when it is sent, so that a retry hours later
/// still carries a fresh `iat`/`exp` (the `jti` stays, so receivers can drop duplicates).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogoutNotice {
    pub client_id: Uuid,
    pub sub: Uuid,
    pub sid: Uuid,
    pub jti: Uuid,
}

#[derive(Serialize)]
struct LogoutClaims {
    iss: String,
    aud: Uuid,
    iat: u64,
    exp: u64,
    jti: Uuid,
    sub: Uuid,
    sid: Uuid,
    events: serde_json::Value,
}

/// The logout token of `notice`, for a client signing with `alg`.
pub(super) fn mint_logout_token(core: &Core, notice: &LogoutNotice, alg: SigningAlgorithm) -> Result<String> {
    let t = now();
    let claims = LogoutClaims {
        iss: issuer(core),
        aud: notice.client_id,
        iat: t,
        exp: t + 120,
        jti: notice.jti,
        sub: notice.sub,
        sid: notice.sid,
        events: serde_json::json!({ LOGOUT_EVENT: {} }),
    };
    sign(core, alg, "logout+jwt", &claims)
}

/// What an `id_token_hint` names: one of our ID tokens, expired or not (OIDC Core §3.1.2.1).
#[derive(Debug, Clone)]
pub struct Hint {
    pub sub: Uuid,
    pub aud: Uuid,
    pub sid: Uuid,
}

/// Reads an ID token we issued; a token that does not verify, another issuer's, or one signed
/// by a key no longer kept is `None`.
pub(super) fn read_hint(core: &Core, token: &str) -> Option<Hint> {
    let ring = core.key_ring();
    let bytes = jws::verify_signature(token, &ring.verifying, "JWT", now()).ok()?;
    let claims: IdClaims = serde_json::from_slice(&bytes).ok()?;
    (claims.iss == issuer(core)).then_some(Hint { sub: claims.sub, aud: claims.aud, sid: claims.sid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_goes_with_the_profile_scope_only() {
        let user = User { display_name: Some("Ann Example".into()), ..User::new(vec!["user".into()], 1) };
        assert_eq!(profile_claims(&user, "openid profile").get("name"), Some(&serde_json::json!("Ann Example")));
        assert_eq!(profile_claims(&user, "openid email").get("name"), None);
    }
}
