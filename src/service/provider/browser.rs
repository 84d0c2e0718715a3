//! The hosted login's browser session: its cookie, and signing in with a password, a second
//! factor or a login provider.

use super::*;

impl Provider {
    /// The browser session a cookie names, if it is live and its user active.
    /// From memory when read lately: the session (checked against the revocations every node
    /// hears of), the user (from the user cache every write refreshes) and the roles.
    pub async fn browser(&self, cookie: Option<&str>) -> Result<Option<Browser>> {
        let Some(sid) = cookie.and_then(|c| self.open::<Uuid>(SEAL_BROWSER, c)) else { return Ok(None) };
        self.browser_session(sid).await
    }

    /// The forward-auth cookie of a browser cookie: the same session, sealed for forward-auth
    /// alone.
    pub fn forward_cookie(&self, browser_cookie: &str) -> Option<String> {
        let sid = self.open::<Uuid>(SEAL_BROWSER, browser_cookie)?;
        self.seal(SEAL_FORWARD, &sid).ok()
    }

    /// The browser session a forward-auth cookie names, as [`Self::browser`].
    pub async fn forwarded(&self, cookie: Option<&str>) -> Result<Option<Browser>> {
        let Some(sid) = cookie.and_then(|c| self.open::<Uuid>(SEAL_FORWARD, c)) else { return Ok(None) };
        self.browser_session(sid).await
    }

    async fn browser_session(&self, sid: Uuid) -> Result<Option<Browser>> {
        let session = match self.recent_browsers.get(&sid) {
            Some(s) => s,
            None => {
                let Some(s) = self.core.db(move |st| st.read(|tx| tx.session(sid).map_err(Error::from))).await? else {
                    return Ok(None);
                };
                let s = Arc::new(s);
                self.recent_browsers.insert(sid, Arc::clone(&s));
                s
            }
        };
        let t = now();
        // Ended since it was read: refused. Every way of ending sessions revokes each one by its
        // id; a user's cut-off of tokens (a change of roles) does not end a browser session, so
        // `u64::MAX` leaves that part of the check out.
        if self.core.revocations.is_revoked(&sid, &session.user_id, u64::MAX, u64::MAX)
            || session.client_id.is_some()
            || session.expires_at.min(session.absolute_expires_at) <= t
        {
            return Ok(None);
        }
        let uid = session.user_id;
        let user = match self.core.store.cached_user(uid) {
            Some(u) => u,
            None => match self.core.db(move |s| s.load_user(uid).map_err(Error::from)).await? {
                Some(u) => u,
                None => return Ok(None),
            },
        };
        // A role that now requires a second factor ends what was opened without one, as a
        // refresh would.
        let roles = self.core.roles_snapshot();
        let second_factor_due = !crate::model::multi_factor(&session.amr)
            && user.roles.iter().filter_map(|r| roles.get(r)).any(|r| r.require_mfa);
        if second_factor_due || !user.is_active() {
            return Ok(None);
        }
        Ok(Some(Browser { session: (*session).clone(), user: (*user).clone() }))
    }

    pub(super) fn cookie_for(&self, session_id: Uuid) -> Result<SignIn> {
        Ok(SignIn::Session(self.seal(SEAL_BROWSER, &session_id)?))
    }

    /// The user of a browser session as the account page acts for them: the context an access
    /// token would give, with the session's own sign-in time, so that the services apply the
    /// same rules (step-up included) as to the API.
    pub async fn account_context(&self, cookie: Option<&str>) -> Result<Option<(AuthContext, User)>> {
        let Some(b) = self.browser(cookie).await? else { return Ok(None) };
        let t = now();
        let claims = crate::security::jws::AccessClaims {
            iss: self.core.cfg.tokens.issuer.clone(),
            aud: self.core.cfg.tokens.audience.clone(),
            sub: b.user.id,
            exp: t + 60,
            iat: b.session.auth_time,
            nbf: t,
            jti: Uuid::now_v7(),
            sid: b.session.id,
            roles: b.user.roles.clone(),
            preferred_username: None,
            permissions: None,
            client_id: None,
            authz_gen: b.user.authz_gen,
            amr: b.session.amr.clone(),
            auth_time: Some(b.session.auth_time),
            email_verified: None,
            azp: None,
            scope: None,
        };
        let ctx = AuthContext { user_id: b.user.id, session_id: b.session.id, claims: Arc::new(claims) };
        Ok(Some((ctx, b.user)))
    }

    /// The browser session a passkey sign-in opened.
    pub fn signed_in_by_passkey(&self, pair: &crate::service::TokenPair) -> Result<SignIn> {
        self.cookie_for(pair.session_id)
    }

    /// The browser session a login through an external provider opened, from its outcome.
    pub fn signed_in_upstream(&self, outcome: Result<crate::service::TokenPair>) -> Result<SignIn> {
        match outcome {
            Ok(pair) => self.cookie_for(pair.session_id),
            Err(Error::MfaRequired(token)) => Ok(SignIn::SecondFactor(token)),
            Err(e) => Err(e),
        }
    }

    /// Seals what the hosted page keeps while the browser is at a provider.
    pub fn seal_upstream(&self, verifier: &str, request: &str) -> Result<String> {
        self.seal(SEAL_UPSTREAM, &(verifier, request, now() + PENDING_TTL))
    }

    /// Opens it again: the PKCE verifier and the pending request.
    pub fn open_upstream(&self, sealed: &str) -> Option<(String, String)> {
        let (verifier, request, until): (String, String, u64) = self.open(SEAL_UPSTREAM, sealed)?;
        (until > now()).then_some((verifier, request))
    }

    /// A password on the hosted login: the same rules as the API's login (throttling,
    /// verification, second factors, disabled accounts).
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        client: ClientInfo,
        solution: Option<crate::service::ChallengeSolution>,
    ) -> Result<SignIn> {
        match self.sessions.login(login, password, Some("Browser".into()), client, solution).await {
            Ok(pair) => self.cookie_for(pair.session_id),
            Err(Error::MfaRequired(token)) => Ok(SignIn::SecondFactor(token)),
            Err(e) => Err(e),
        }
    }

    /// The second step of the hosted login: a TOTP or recovery code.
    pub async fn sign_in_second_factor(&self, mfa_token: &str, code: &str, client: ClientInfo) -> Result<SignIn> {
        let code = code.trim();
        let factor = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            SecondFactor::Totp(code.to_owned())
        } else {
            SecondFactor::Recovery(code.to_owned())
        };
        let pair = self.factors.login_mfa(mfa_token, factor, client).await?;
        self.cookie_for(pair.session_id)
    }
}
