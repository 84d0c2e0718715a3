//! Logout: RP-initiated (OIDC RP-Initiated Logout), the end of a browser session and of every
//! relying party's session under it, and back-channel logout tokens queued in the outbox.

use super::*;
use crate::service::issuing::end_with_children;

impl Provider {
    /// RP-initiated logout (OIDC RP-Initiated Logout §2). `confirmed` when the user pressed the
    /// button of our confirmation page.
    pub async fn end_session(
        &self,
        params: &Params,
        cookie: Option<&str>,
        confirmed: bool,
    ) -> std::result::Result<LoggedOut, Refused> {
        let hint: Option<Hint> = match param(params, "id_token_hint") {
            Some(h) => Some(id_tokens::read_hint(&self.core, h).ok_or(Refused::BadHint)?),
            None => None,
        };
        let named = param(params, "client_id");
        if let (Some(h), Some(c)) = (&hint, named)
            && h.aud.to_string() != c
        {
            return Err(Refused::BadHint);
        }
        let client = match (&hint, named) {
            (Some(h), _) => self.clients.get(h.aud).await?,
            (None, Some(c)) => self.clients.find(c).await?,
            (None, None) => None,
        };
        let back_to = match param(params, "post_logout_redirect_uri") {
            Some(uri) => match &client {
                Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => Some(uri.to_owned()),
                _ => return Err(Refused::BadRedirectUri),
            },
            None => None,
        };
        let browser = self.browser(cookie).await?;
        let Some(hint) = hint else {
            if !confirmed {
                return Ok(LoggedOut::Confirm);
            }
            if let Some(b) = browser {
                self.end_browser_session(b.user.id, b.session.id).await?;
            }
            return Ok(LoggedOut::Done);
        };
        // An ID token alone is no proof of being that browser: anyone who saw one could sign
        // the user out. Without this browser's own session, the user confirms first.
        let this_browser = browser.as_ref().is_some_and(|b| b.session.id == hint.sid);
        if !this_browser && !confirmed {
            return Ok(LoggedOut::Confirm);
        }
        self.end_browser_session(hint.sub, hint.sid).await?;
        if let Some(b) = browser.filter(|b| b.session.id != hint.sid) {
            self.end_browser_session(b.user.id, b.session.id).await?;
        }
        Ok(match back_to {
            Some(uri) => {
                let mut pairs = Vec::new();
                if let Some(s) = param(params, "state") {
                    pairs.push(("state", s));
                }
                LoggedOut::Redirect(with_query(&uri, &pairs))
            }
            None => LoggedOut::Done,
        })
    }

    /// Ends a browser session and every relying party's session under it, and queues a
    /// back-channel logout for each of those clients that asked for one.
    pub(super) async fn end_browser_session(&self, user_id: Uuid, sid: Uuid) -> Result<()> {
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let ended = end_with_children(tx, user_id, sid)?;
                    if ended > 0 {
                        tx.audit("user.logged_out", Some(user_id), Some(sid), json!({"client_sessions": ended - 1}))?;
                    }
                    Ok(())
                })
            })
            .await?;
        tracing::info!(event = "logout", user_id = %user_id, session_id = %sid, "browser session ended");
        Ok(())
    }
}
