//! The authorization endpoint: checking a request, deciding with the browser session, the
//! login and consent pages' answers, and issuing codes.

use super::*;

impl Provider {
    /// An authorization request (GET query or POST form), with the browser session cookie if
    /// any. Only a bad client, redirect URI or request URI gets a page; every other error goes
    /// back to the client.
    pub async fn authorize(
        &self,
        params: std::result::Result<Params, String>,
        cookie: Option<&str>,
    ) -> std::result::Result<Authorized, Refused> {
        let (params, repeated) = match params {
            Ok(p) => (p, None),
            Err(name) => (Params::new(), Some(name)),
        };
        let Some(repeated_or_client) = repeated.clone().or_else(|| param(&params, "client_id").map(str::to_owned))
        else {
            return Err(Refused::UnknownClient);
        };
        if let Some(name) = repeated {
            // Which of the two values to trust cannot be told; nothing is.
            tracing::debug!(param = %name, "authorization request repeats a parameter");
            return Err(Refused::UnknownClient);
        }
        let client = self.clients.find(&repeated_or_client).await?.ok_or(Refused::UnknownClient)?;
        if client.redirect_uris.is_empty() {
            return Err(Refused::UnknownClient);
        }
        // A pushed request stands in for every parameter but the client id (RFC 9126 §4).
        let (params, pushed) = match param(&params, "request_uri") {
            Some(uri) => (self.take_pushed(&client, uri).await?.ok_or(Refused::BadRequestUri)?, true),
            None => (params, false),
        };
        let redirect_uri = match param(&params, "redirect_uri") {
            Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
            Some(_) => return Err(Refused::BadRedirectUri),
            // RFC 6749 §3.1.2.3: may be left out when exactly one is registered.
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(Refused::BadRedirectUri),
        };
        let state = param(&params, "state").map(str::to_owned);
        let req = match self.validate(&client, &params, pushed, redirect_uri.clone()) {
            Ok(r) => r,
            Err(r) => return Ok(self.error_redirect(&redirect_uri, state.as_deref(), &r)),
        };
        let browser = self.browser(cookie).await?;
        Ok(self.decide(req, &client, browser).await?)
    }

    /// Every check of RFC 6749 §4.1.1, RFC 7636 and OIDC Core §3.1.2.1 past the client and its
    /// redirect URI.
    pub(super) fn validate(
        &self,
        client: &Client,
        p: &Params,
        pushed: bool,
        redirect_uri: String,
    ) -> std::result::Result<AuthRequest, OAuthRefusal> {
        if p.contains_key("request") {
            return Err(refusal("request_not_supported", "request objects are not supported; push the request (PAR)"));
        }
        match param(p, "response_type") {
            None => return Err(refusal("invalid_request", "response_type is missing")),
            Some("code") => {}
            Some(_) => return Err(refusal("unsupported_response_type", "only response_type=code is supported")),
        }
        if client.require_par && !pushed {
            return Err(refusal("invalid_request", "this client must push its authorization requests (PAR)"));
        }
        for (name, max) in
            [("state", MAX_STATE), ("nonce", 512), ("login_hint", 320), ("ui_locales", 64), ("claims", 4096)]
        {
            if p.get(name).is_some_and(|v| v.len() > max) {
                return Err(refusal("invalid_request", format!("{name} is longer than {max} characters")));
            }
        }
        let asked: Vec<&str> = param(p, "scope").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).collect();
        if !asked.contains(&"openid") {
            return Err(refusal("invalid_scope", "scope must include openid"));
        }
        // Scopes the client may not have are left out (RFC 6749 §3.3); the response says which.
        let mut scope: Vec<String> = SCOPES
            .iter()
            .filter(|s| asked.contains(s) && client.scopes.iter().any(|c| c == *s))
            .map(|s| (*s).to_owned())
            .collect();
        if !scope.iter().any(|s| s == "openid") {
            scope.insert(0, "openid".into());
        }
        let challenge = param(p, "code_challenge");
        match (challenge, param(p, "code_challenge_method")) {
            (Some(c), Some("S256")) if pkce_shaped(c) => {}
            (Some(_), Some("S256")) => {
                return Err(refusal("invalid_request", "code_challenge must be 43-128 unreserved characters"));
            }
            (Some(_), _) => return Err(refusal("invalid_request", "code_challenge_method must be S256")),
            (None, Some(_)) => return Err(refusal("invalid_request", "code_challenge_method without code_challenge")),
            (None, None) if client.is_public() => {
                return Err(refusal("invalid_request", "a public client must use PKCE (S256)"));
            }
            (None, None) => {}
        }
        let prompts: Vec<&str> = param(p, "prompt").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).collect();
        if prompts.contains(&"none") && prompts.len() > 1 {
            return Err(refusal("invalid_request", "prompt=none cannot be combined with other values"));
        }
        let t = now();
        let mut fresh_after = None;
        if prompts.contains(&"login") || prompts.contains(&"select_account") {
            fresh_after = Some(t);
        }
        if let Some(age) = param(p, "max_age") {
            let age: u64 =
                age.parse().map_err(|_| refusal("invalid_request", "max_age must be a number of seconds"))?;
            fresh_after = Some(fresh_after.unwrap_or(0).max(t.saturating_sub(age)));
        }
        let hint_sub = match param(p, "id_token_hint") {
            Some(h) => Some(
                id_tokens::read_hint(&self.core, h)
                    .ok_or_else(|| refusal("invalid_request", "id_token_hint is not an ID token of this issuer"))?
                    .sub,
            ),
            None => None,
        };
        // Claims asked for by name are released only within the granted scopes, which is what
        // those scopes release anyway; the parameter is checked, and cannot widen the consent.
        if param(p, "claims").is_some_and(|c| requested_claims(c).is_none()) {
            return Err(refusal("invalid_request", "claims must be a JSON object"));
        }
        Ok(AuthRequest {
            client_id: client.id,
            redirect_uri,
            scope,
            state: param(p, "state").map(str::to_owned),
            nonce: param(p, "nonce").map(str::to_owned),
            code_challenge: challenge.map(str::to_owned),
            fresh_after,
            prompt_login: prompts.contains(&"login") || prompts.contains(&"select_account"),
            prompt_none: prompts.contains(&"none"),
            prompt_consent: prompts.contains(&"consent"),
            hint_sub,
            login_hint: param(p, "login_hint").map(str::to_owned),
            expires_at: t + PENDING_TTL,
        })
    }

    /// Signed in, recently enough, as the hint says, and allowed: a code. Otherwise a page, or
    /// under `prompt=none` the error that says which.
    pub(super) async fn decide(
        &self,
        req: AuthRequest,
        client: &Client,
        browser: Option<Browser>,
    ) -> Result<Authorized> {
        let signed_in = browser.filter(|b| satisfies(&req, b));
        let Some(b) = signed_in else {
            if req.prompt_none {
                return Ok(self.error_redirect(
                    &req.redirect_uri,
                    req.state.as_deref(),
                    &refusal("login_required", "the user is not signed in"),
                ));
            }
            return Ok(Authorized::Login(self.pending(&req, client)?));
        };
        let consented = client.trusted
            || b.user
                .consents
                .iter()
                .any(|c| c.client_id == client.id && req.scope.iter().all(|s| c.scopes.contains(s)));
        if req.prompt_consent || !consented {
            if req.prompt_none {
                return Ok(self.error_redirect(
                    &req.redirect_uri,
                    req.state.as_deref(),
                    &refusal("consent_required", "the user has not allowed this client"),
                ));
            }
            return Ok(Authorized::Consent(self.pending(&req, client)?));
        }
        self.issue_code(&req, &b).await
    }

    pub(super) fn pending(&self, req: &AuthRequest, client: &Client) -> Result<Pending> {
        Ok(Pending {
            request: self.seal(SEAL_REQUEST, req)?,
            client_name: client.name.clone(),
            scopes: req.scope.clone(),
            login_hint: req.login_hint.clone(),
            redirect_uri: Some(req.redirect_uri.clone()),
            fresh_after: req.fresh_after,
            prompt_login: req.prompt_login,
        })
    }

    /// Where a pending request's answer will go, if the request is still good.
    pub async fn redirect_uri_of(&self, sealed: &str) -> Option<String> {
        self.reopen(sealed).await.ok().map(|(req, _)| req.redirect_uri)
    }

    /// The request a page carried back, if it is still good, and its client.
    pub(super) async fn reopen(&self, sealed: &str) -> std::result::Result<(AuthRequest, Client), Refused> {
        let req: AuthRequest = self.open(SEAL_REQUEST, sealed).ok_or(Refused::Stale)?;
        if req.expires_at <= now() {
            return Err(Refused::Stale);
        }
        let client = self.clients.get(req.client_id).await?.ok_or(Refused::UnknownClient)?;
        if !client.redirect_uris.contains(&req.redirect_uri) {
            return Err(Refused::BadRedirectUri);
        }
        // The client's scopes may have been narrowed since the request was made.
        let mut req = req;
        req.scope.retain(|s| s == "openid" || client.scopes.contains(s));
        Ok((req, client))
    }

    /// The client and scopes a pending request shows, for its page.
    pub async fn pending_of(&self, sealed: &str) -> std::result::Result<Pending, Refused> {
        let (req, client) = self.reopen(sealed).await?;
        Ok(self.pending(&req, &client)?)
    }

    /// After the login page: the request goes on with the browser session just opened.
    pub async fn resume(&self, sealed: &str, cookie: Option<&str>) -> std::result::Result<Authorized, Refused> {
        let (mut req, client) = self.reopen(sealed).await?;
        req.prompt_none = false;
        let browser = self.browser(cookie).await?;
        Ok(self.decide(req, &client, browser).await?)
    }

    /// The user's answer on the consent page.
    pub async fn consent(
        &self,
        sealed: &str,
        cookie: Option<&str>,
        allow: bool,
    ) -> std::result::Result<Authorized, Refused> {
        let (mut req, client) = self.reopen(sealed).await?;
        // The consent page answers for a sign-in that meets the request (fresh enough, the
        // user a hint names), never for an older or other one.
        let Some(b) = self.browser(cookie).await?.filter(|b| satisfies(&req, b)) else {
            req.prompt_none = false;
            return Ok(Authorized::Login(self.pending(&req, &client)?));
        };
        if !allow {
            return Ok(self.error_redirect(
                &req.redirect_uri,
                req.state.as_deref(),
                &refusal("access_denied", "the user did not allow this client"),
            ));
        }
        let (user_id, client_id, scopes) = (b.user.id, client.id, req.scope.clone());
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let mut u = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    let mut granted = u
                        .consents
                        .iter()
                        .find(|c| c.client_id == client_id)
                        .map(|c| c.scopes.clone())
                        .unwrap_or_default();
                    for s in &scopes {
                        if !granted.contains(s) {
                            granted.push(s.clone());
                        }
                    }
                    u.consents.retain(|c| c.client_id != client_id);
                    u.consents.push(Consent { client_id, scopes: granted.clone(), at: tx.now() });
                    u.updated_at = tx.now();
                    tx.update_user(&u)?;
                    tx.audit(
                        "consent.granted",
                        Some(user_id),
                        None,
                        json!({"client_id": client_id, "scopes": granted}),
                    )?;
                    Ok(())
                })
            })
            .await?;
        let b = Browser { user: self.core.user(user_id).await?, ..b };
        Ok(self.issue_code(&req, &b).await?)
    }

    pub(super) async fn issue_code(&self, req: &AuthRequest, b: &Browser) -> Result<Authorized> {
        let grant = CodeGrant {
            id: Uuid::now_v7(),
            expires_at: now() + CODE_TTL,
            client_id: req.client_id,
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scope.join(" "),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            browser_sid: b.session.id,
            user_id: b.user.id,
            auth_time: b.session.auth_time_claim(),
            amr: b.session.amr.clone(),
        };
        let code = self.seal(SEAL_CODE, &grant)?;
        let iss = self.issuer();
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = &req.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &iss));
        Ok(Authorized::Redirect(with_query(&req.redirect_uri, &pairs)))
    }
}

/// Does the browser session `b` meet the request: signed in recently enough, as the user an
/// `id_token_hint` names?
fn satisfies(req: &AuthRequest, b: &Browser) -> bool {
    req.fresh_after.is_none_or(|t| b.session.proven_at() >= t) && req.hint_sub.is_none_or(|sub| sub == b.user.id)
}

/// The claim names a `claims` request parameter asks for (OIDC Core §5.5); `None` when it is
/// not a JSON object.
fn requested_claims(raw: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let o = v.as_object()?;
    let mut out = Vec::new();
    for part in ["userinfo", "id_token"] {
        if let Some(members) = o.get(part) {
            for k in members.as_object()?.keys().take(32) {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_by_name() {
        let claims =
            requested_claims(r#"{"userinfo":{"email":null},"id_token":{"email":{"essential":true},"acr":null}}"#);
        assert_eq!(claims, Some(vec!["email".to_string(), "acr".to_string()]));
        assert_eq!(requested_claims("[1]"), None);
    }
}
