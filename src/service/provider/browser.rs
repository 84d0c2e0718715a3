//! The hosted login's browser session: its cookie, and signing in with a password, a second
//! factor or a login provider.

use super::*;

impl Provider {
    /// The browser session a cookie names, if it is live and its user active.
    pub async fn browser(&self, cookie: Option<&str>) -> Result<Option<Browser>> {
        let Some(sid) = cookie.and_then(|c| self.open::<Uuid>(SEAL_BROWSER, c)) else { return Ok(None) };
        let found = self
            .core
            .db(move |s| {
                s.read(|tx| {
                    let Some(session) = tx.session(sid)? else { return Ok(None) };
                    let Some(user) = tx.user(session.user_id)? else { return Ok(None) };
                    // A role that now requires a second factor ends what was opened without
                    // one, as a refresh would.
                    let second_factor_due = !session.amr.iter().any(|m| m == "otp")
                        && tx.roles()?.iter().any(|r| r.require_mfa && user.roles.contains(&r.name));
                    Ok((!second_factor_due).then_some((session, user)))
                })
            })
            .await?;
        let t = now();
        Ok(found
            .filter(|(s, u)| s.client_id.is_none() && s.expires_at.min(s.absolute_expires_at) > t && u.is_active())
            .map(|(session, user)| Browser { session, user }))
    }

    pub(super) fn cookie_for(&self, session_id: Uuid) -> Result<SignIn> {
        Ok(SignIn::Session(self.seal(SEAL_BROWSER, &session_id)?))
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
