//! The token endpoint's grants: a code (one write: spent marker and session together), a
//! refresh token bound to its client, and a backend's client credentials.

use super::*;

impl Provider {
    /// Every grant of the token endpoint.
    pub async fn token(&self, presented: &Presented, grant: Grant, from: ClientInfo) -> Result<Issued> {
        match grant {
            Grant::ClientCredentials => {
                let (access_token, expires_in) = self.clients.token(presented).await?;
                Ok(Issued { access_token, expires_in, refresh_token: None, id_token: None, scope: None })
            }
            Grant::AuthorizationCode { code, redirect_uri, verifier } => {
                let client = self.clients.authenticate(presented).await?;
                self.redeem(client, &code, redirect_uri, verifier, from).await
            }
            Grant::RefreshToken { token } => {
                let client = self.clients.authenticate(presented).await?;
                if client.redirect_uris.is_empty() {
                    return Err(Error::UnauthorizedClient);
                }
                let (pair, session, user) =
                    self.sessions.rotate(&token, from, Some(client.id)).await.map_err(|e| match e {
                        Error::InvalidRefreshToken => Error::InvalidGrant("the refresh token is invalid or expired"),
                        Error::RefreshTokenReused => {
                            Error::InvalidGrant("the refresh token was already used; the session has ended")
                        }
                        Error::SecondFactorRequired => {
                            Error::InvalidGrant("a role of this account now requires a second factor; sign in again")
                        }
                        e => e,
                    })?;
                let id_token = id_tokens::mint_id_token(&self.core, &client, &user, &session, None)?;
                Ok(Issued {
                    access_token: pair.access_token,
                    expires_in: pair.expires_in,
                    refresh_token: Some(pair.refresh_token),
                    id_token: Some(id_token),
                    scope: session.scope,
                })
            }
        }
    }

    /// A code for tokens, in one write: the code is spent and the client's session opened
    /// together. A code presented again ends the session it opened (RFC 6749 §4.1.2).
    pub(super) async fn redeem(
        &self,
        client: Client,
        code: &str,
        redirect_uri: Option<String>,
        verifier: Option<String>,
        from: ClientInfo,
    ) -> Result<Issued> {
        // Checked before any storage: the code's own seal, client, life, redirect URI and PKCE.
        let grant: CodeGrant = Some(code)
            .filter(|c| c.len() <= MAX_CODE)
            .and_then(|c| self.open(SEAL_CODE, c))
            .ok_or(Error::InvalidGrant("the code is invalid"))?;
        // Another client holding a leaked code gets nothing, not even the power to end what the
        // code issued.
        if grant.client_id != client.id {
            return Err(Error::InvalidGrant("the code is invalid"));
        }
        let refresh = random::new_token();
        let refresh_hash = random::token_hash(&refresh);
        let cfg = Arc::clone(&self.core.cfg);
        let c = client.clone();
        let outcome = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let t = tx.now();
                    let marker_id = OneTimeSecret::id_for(Purpose::AuthorizationCode, grant.id);
                    // Presented again: what it issued ends (RFC 6749 §4.1.2).
                    let reused = |tx: &mut Tx<'_>| -> Result<Exchange> {
                        let issued = tx.one_time(&marker_id)?.and_then(|m| m.issued);
                        if let Some(sid) = issued {
                            tx.revoke_session(sid)?;
                            tx.audit_failure(
                                "oidc.code_reused",
                                Some(grant.user_id),
                                Some(sid),
                                json!({"client_id": c.id}),
                            )?;
                        }
                        Ok(Exchange::Reused)
                    };
                    // Reuse is caught as long as the spent marker lives, past the code's own life.
                    if tx.one_time(&marker_id)?.is_some() {
                        return reused(tx);
                    }
                    if grant.expires_at <= t {
                        return Ok(Exchange::Invalid("the code has expired"));
                    }
                    if redirect_uri.as_deref().is_some_and(|r| r != grant.redirect_uri)
                        || (redirect_uri.is_none() && c.redirect_uris.len() > 1)
                    {
                        return Ok(Exchange::Invalid("redirect_uri is not the one of the authorization request"));
                    }
                    match (&grant.code_challenge, &verifier) {
                        (Some(challenge), Some(v))
                            if pkce_shaped(v) && bool::from(s256(v).as_bytes().ct_eq(challenge.as_bytes())) => {}
                        (Some(_), _) => return Ok(Exchange::Invalid("code_verifier does not match the challenge")),
                        (None, Some(_)) => {
                            return Ok(Exchange::Invalid("a code_verifier for a code issued without a challenge"));
                        }
                        (None, None) => {}
                    }
                    let session_id = Uuid::now_v7();
                    let marker = OneTimeSecret {
                        id: marker_id.clone(),
                        purpose: Purpose::AuthorizationCode,
                        user_id: Some(grant.user_id),
                        token_hash: None,
                        code_hash: None,
                        target: None,
                        amr: Vec::new(),
                        method: None,
                        created_at: t,
                        expires_at: grant.expires_at + SPENT_CODE_TTL,
                        attempts_left: 0,
                        budget_until: 0,
                        sealed: None,
                        issued: Some(session_id),
                    };
                    // Two redemptions at once (two nodes): one claims the code, the other is a reuse.
                    if !tx.claim_one_time(&marker)? {
                        return reused(tx);
                    }
                    let Some(user) = tx.user(grant.user_id)?.filter(User::is_active) else {
                        return Ok(Exchange::Invalid("the code is invalid"));
                    };
                    // The browser session the code came from: this user's, a browser's, still live.
                    let Some(browser) = tx.session(grant.browser_sid)?.filter(|b| {
                        b.user_id == grant.user_id
                            && b.client_id.is_none()
                            && b.expires_at.min(b.absolute_expires_at) > t
                    }) else {
                        return Ok(Exchange::Invalid("the sign-in this code came from has ended"));
                    };
                    let session = Session {
                        id: session_id,
                        user_id: user.id,
                        device_name: Some(c.name.chars().take(100).collect()),
                        user_agent: from.user_agent.map(|a| a.chars().take(300).collect()),
                        ip: from.ip.map(|ip| ip.to_string()),
                        created_at: t,
                        last_used_at: t,
                        expires_at: (t + cfg.tokens.refresh_ttl.as_secs()).min(browser.absolute_expires_at),
                        absolute_expires_at: (t + cfg.tokens.session_max.as_secs()).min(browser.absolute_expires_at),
                        generation: 0,
                        amr: grant.amr,
                        auth_time: grant.auth_time,
                        client_id: Some(c.id),
                        parent: Some(browser.id),
                        scope: Some(grant.scope),
                        upstream_auth_time: browser.upstream_auth_time,
                    };
                    tx.put_session(&session)?;
                    tx.put_refresh(
                        &refresh_hash,
                        &RefreshRecord { session_id: session.id, used: false, expires_at: session.expires_at },
                    )?;
                    tx.audit(
                        "oidc.tokens_issued",
                        Some(user.id),
                        Some(session.id),
                        json!({"client_id": c.id, "scope": session.scope}),
                    )?;
                    let permissions = permissions_in(tx, cfg.tokens.include_permissions, &user.roles)?;
                    Ok(Exchange::Issued(Box::new(user), Box::new(session), refresh, permissions, grant.nonce))
                })
            })
            .await?;
        match outcome {
            Exchange::Issued(user, session, refresh, permissions, nonce) => {
                let (access_token, expires_in) = mint_access_token(&self.core, &user, &session, permissions)?;
                let id_token = id_tokens::mint_id_token(&self.core, &client, &user, &session, nonce)?;
                Ok(Issued {
                    access_token,
                    expires_in,
                    refresh_token: Some(refresh),
                    id_token: Some(id_token),
                    scope: session.scope.clone(),
                })
            }
            Exchange::Reused => {
                tracing::warn!(client_id = %client.id, "authorization code presented again; its session ended");
                Err(Error::InvalidGrant("the code was already used; what it issued is revoked"))
            }
            Exchange::Invalid(why) => Err(Error::InvalidGrant(why)),
        }
    }
}
