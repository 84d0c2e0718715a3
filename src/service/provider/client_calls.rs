//! What a client asks of a token it holds: UserInfo (OIDC Core §5.3), revocation (RFC 7009)
//! and introspection (RFC 7662).

use super::*;

impl Provider {
    /// OIDC Core §5.3: the claims the access token's scopes release.
    pub async fn userinfo(&self, token: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        let ctx = self.tokens.authenticate(token).map_err(Error::InvalidToken)?;
        let scope = ctx.claims.scope.clone().unwrap_or_default();
        if ctx.claims.azp.is_none() || !scope.split(' ').any(|s| s == "openid") {
            return Err(Error::InsufficientScope);
        }
        // Served from memory when cached, as `GET /v1/me` is: the token check already refused
        // what was revoked, and every user write refreshes the cache.
        let uid = ctx.user_id;
        let user = match self.core.store.cached_user(uid) {
            Some(u) => u,
            None => self
                .core
                .db(move |s| s.load_user(uid).map_err(Error::from))
                .await?
                .ok_or(Error::InvalidToken(crate::error::TokenError::Revoked))?,
        };
        if !user.is_active() {
            return Err(Error::InvalidToken(crate::error::TokenError::Revoked));
        }
        let mut out = serde_json::Map::new();
        out.insert("sub".into(), json!(user.id));
        out.extend(id_tokens::profile_claims(&user, &scope));
        Ok(out)
    }

    /// RFC 7009: ends the session of a refresh or access token the client holds; anything else
    /// is quietly ignored.
    pub async fn revoke(&self, presented: &Presented, token: &str) -> Result<()> {
        let client = self.clients.authenticate(presented).await?;
        let sid = match self.session_of(&client, token).await? {
            Some(sid) => sid,
            None => return Ok(()),
        };
        let client_id = client.id;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    if let Some(session) = tx.session(sid)? {
                        tx.audit(
                            "oidc.token_revoked",
                            Some(session.user_id),
                            Some(sid),
                            json!({"client_id": client_id}),
                        )?;
                        tx.revoke_session(sid)?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// The session of a token issued to `client`.
    pub(super) async fn session_of(&self, client: &Client, token: &str) -> Result<Option<Uuid>> {
        if token.contains('.') {
            return Ok(self
                .tokens
                .authenticate(token)
                .ok()
                .filter(|ctx| ctx.claims.azp == Some(client.id))
                .map(|ctx| ctx.session_id));
        }
        let Some(t) = OpaqueToken::parse(token) else { return Ok(None) };
        let hash = t.hash();
        let id = client.id;
        self.core
            .db(move |s| {
                s.read(|tx| {
                    let Some(rec) = tx.refresh(&hash)? else { return Ok(None) };
                    Ok(tx.session(rec.session_id)?.filter(|s| s.client_id == Some(id)).map(|s| s.id))
                })
            })
            .await
    }

    /// RFC 7662 for a client: only its own tokens are ever active.
    pub async fn introspect(&self, presented: &Presented, token: &str) -> Result<Introspection> {
        let client = self.clients.authenticate(presented).await?;
        if token.contains('.') {
            return Ok(match self.tokens.authenticate(token) {
                Ok(ctx) if ctx.claims.azp == Some(client.id) => Introspection::of_access(&ctx),
                _ => Introspection::default(),
            });
        }
        let i = self.tokens.introspect_refresh(token).await?;
        Ok(if i.client_id == Some(client.id) { i } else { Introspection::default() })
    }
}
