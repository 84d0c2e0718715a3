//! Access tokens: minting, the per-request check (no disk), and introspection (RFC 7662).

use std::sync::Arc;

use uuid::Uuid;

use super::core::Core;
use crate::{
    error::{Error, Result, TokenError},
    model::{User, now},
    security::{
        jws::{self, AccessClaims, Expectations},
        key_ring::KeyRing,
        random::token_hash,
    },
};

/// Who is calling, from a verified and unrevoked access token.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// Shared with the cache of verified tokens: a check that hits the cache copies nothing.
    pub claims: Arc<AccessClaims>,
}

impl AuthContext {
    pub fn roles(&self) -> &[String] {
        &self.claims.roles
    }
}

/// RFC 7662 answer; everything but `active` is absent for an inactive token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    pub token_type: Option<&'static str>,
    pub sub: Option<Uuid>,
    pub sid: Option<Uuid>,
    pub jti: Option<Uuid>,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
    pub roles: Option<Vec<String>>,
    pub iss: Option<String>,
    pub aud: Option<String>,
    /// The relying party the token was issued to.
    pub client_id: Option<Uuid>,
    pub scope: Option<String>,
}

impl Introspection {
    /// What RFC 7662 says of a live access token.
    pub(super) fn of_access(ctx: &AuthContext) -> Self {
        let c = &ctx.claims;
        Self {
            active: true,
            token_type: Some("access_token"),
            sub: Some(ctx.user_id),
            sid: Some(ctx.session_id),
            jti: Some(c.jti),
            exp: Some(c.exp),
            iat: Some(c.iat),
            roles: Some(c.roles.clone()),
            iss: Some(c.iss.clone()),
            aud: Some(c.aud.clone()),
            client_id: c.azp.or(c.client_id),
            scope: c.scope.clone(),
        }
    }
}

/// Milliseconds since the epoch at which a token was minted, from its UUIDv7 `jti`.
fn issued_ms(c: &AccessClaims) -> u64 {
    c.jti
        .get_timestamp()
        .map(|ts| {
            let (s, n) = ts.to_unix();
            s * 1000 + u64::from(n / 1_000_000)
        })
        .unwrap_or(c.iat * 1000)
}

/// Access tokens: the per-request check and introspection.
#[derive(Clone)]
pub struct Tokens {
    core: Arc<Core>,
}

impl Tokens {
    pub(super) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// The per-request check: signature and claims (or a cache of tokens that passed them), then
    /// in-memory revocations. Never reads disk.
    ///
    /// Only tokens whose signature verified enter the cache, keyed by a hash of the whole token,
    /// so a flood of forged or garbage tokens can neither fill it nor evict what is there; an
    /// entry still has its time window checked on every hit, and revocations are always
    /// checked, cached or not.
    pub fn authenticate(&self, token: &str) -> Result<AuthContext, TokenError> {
        let t = now();
        let leeway = self.core.cfg.tokens.leeway.as_secs();
        let key = token_hash(token);
        let claims = match self.core.verified.get(&key) {
            Some(c) if c.exp + leeway > t && c.nbf <= t + leeway => {
                self.core.metrics.token_cache_hits.inc();
                c
            }
            Some(_) => return Err(TokenError::Expired),
            None => {
                self.core.metrics.token_cache_misses.inc();
                let ring = self.core.key_ring();
                let expect = Expectations {
                    issuer: &self.core.cfg.tokens.issuer,
                    audience: &self.core.cfg.tokens.audience,
                    leeway,
                    now: t,
                };
                let c = Arc::new(jws::verify(token, &ring.verifying, &expect)?);
                keep_verified(&self.core, &ring, token, Arc::clone(&c));
                c
            }
        };
        if self.core.revocations.is_revoked(&claims.sid, &claims.sub, issued_ms(&claims), claims.authz_gen) {
            return Err(TokenError::Revoked);
        }
        Ok(AuthContext { user_id: claims.sub, session_id: claims.sid, claims })
    }

    pub fn require_permission(&self, ctx: &AuthContext, permission: &str) -> Result<()> {
        if self.core.has_permission(ctx.roles(), permission) {
            Ok(())
        } else {
            Err(Error::Forbidden(permission.into()))
        }
    }

    /// Is `token` (an access or a refresh token) live right now?
    pub async fn introspect(&self, caller: &AuthContext, token: &str) -> Result<Introspection> {
        self.require_permission(caller, "tokens:introspect")?;
        if token.contains('.') {
            return Ok(match self.authenticate(token) {
                Ok(ctx) => Introspection::of_access(&ctx),
                Err(_) => Introspection::default(),
            });
        }
        self.introspect_refresh(token).await
    }

    /// RFC 7662 for a refresh token: live, with its session's user and, for a relying party's,
    /// its client and scope.
    pub(super) async fn introspect_refresh(&self, token: &str) -> Result<Introspection> {
        let Some(token) = crate::security::token::OpaqueToken::parse(token) else {
            return Ok(Introspection::default());
        };
        let hash = token.hash();
        let found = self
            .core
            .db(move |s| {
                s.read(|tx| {
                    let Some(rec) = tx.refresh(&hash)? else {
                        return Ok(None);
                    };
                    let Some(session) = tx.session(rec.session_id)? else {
                        return Ok(None);
                    };
                    let user = tx.user(session.user_id)?;
                    Ok(Some((rec, session, user)))
                })
            })
            .await?;
        let t = now();
        Ok(match found {
            Some((rec, session, Some(user)))
                if !rec.used && rec.expires_at > t && session.absolute_expires_at > t && user.is_active() =>
            {
                Introspection {
                    active: true,
                    token_type: Some("refresh_token"),
                    sub: Some(user.id),
                    sid: Some(session.id),
                    exp: Some(rec.expires_at.min(session.absolute_expires_at)),
                    iat: Some(session.last_used_at),
                    roles: Some(user.roles),
                    iss: Some(self.core.cfg.tokens.issuer.clone()),
                    client_id: session.client_id,
                    scope: session.scope,
                    ..Introspection::default()
                }
            }
            _ => Introspection::default(),
        })
    }
}

/// An access token for `session`. `permissions` are those the user's roles granted in the transaction that read `user`,
/// when `tokens.include_permissions` is on.
pub(super) fn mint_access_token(
    core: &Core,
    user: &User,
    session: &crate::model::Session,
    permissions: Option<Vec<String>>,
) -> Result<(String, u64)> {
    let t = now();
    let ttl = core.cfg.tokens.access_ttl.as_secs();
    // A relying party's token carries only what its granted scopes release.
    let granted = |scope: &str| {
        session.client_id.is_none() || session.scope.as_deref().is_some_and(|s| s.split(' ').any(|g| g == scope))
    };
    let claims = AccessClaims {
        iss: core.cfg.tokens.issuer.clone(),
        aud: core.cfg.tokens.audience.clone(),
        sub: user.id,
        exp: t + ttl,
        iat: t,
        nbf: t,
        jti: Uuid::now_v7(),
        sid: session.id,
        roles: if granted("roles") { user.roles.clone() } else { Vec::new() },
        preferred_username: user.username.clone().filter(|_| granted("profile")),
        permissions: permissions.filter(|_| granted("roles")),
        client_id: None,
        authz_gen: user.authz_gen,
        amr: session.amr.clone(),
        auth_time: Some(session.authenticated_at()),
        email_verified: (core.cfg.verification.email != crate::config::VerifyMode::Off
            && user.email.is_some()
            && granted("email"))
        .then_some(user.email_verified),
        azp: session.client_id,
        scope: session.scope.clone(),
    };
    let ring = core.key_ring();
    let token = ring.active.sign(&claims).map_err(|e| Error::Internal(e.to_string()))?;
    // Known good as signed (unless too long for the check to take): its first use skips the
    // signature check.
    if token.len() <= crate::security::jws::MAX_TOKEN_LEN {
        keep_verified(core, &ring, &token, Arc::new(claims));
    }
    Ok((token, ttl))
}

/// Caches `claims` of `token`, checked under `ring`. Keys installed meanwhile empty the cache
/// after the swap, so an entry made under an older ring is dropped either way.
fn keep_verified(core: &Core, ring: &Arc<KeyRing>, token: &str, claims: Arc<AccessClaims>) {
    let key = token_hash(token);
    core.verified.insert(key, claims);
    if !Arc::ptr_eq(ring, &core.key_ring()) {
        core.verified.remove(&key);
    }
}
