//! Pushed authorization requests (RFC 9126): checked as the authorization endpoint would, kept
//! once for 60 s.

use super::*;

impl Provider {
    /// RFC 9126: checks a request as the authorization endpoint would and keeps it for one use.
    /// Returns the `request_uri` and its lifetime.
    pub async fn push(
        &self,
        presented: &Presented,
        params: Params,
    ) -> Result<std::result::Result<(String, u64), OAuthRefusal>> {
        let client = self.clients.authenticate(presented).await?;
        if param(&params, "client_id").is_some_and(|c| c != client.id.to_string()) {
            return Ok(Err(refusal("invalid_request", "client_id is not the authenticated client")));
        }
        if params.contains_key("request_uri") {
            return Ok(Err(refusal("invalid_request", "request_uri cannot be pushed")));
        }
        let redirect_uri = match param(&params, "redirect_uri") {
            Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            _ => return Ok(Err(refusal("invalid_request", "redirect_uri is not one registered for this client"))),
        };
        if let Err(r) = self.validate(&client, &params, true, redirect_uri) {
            return Ok(Err(r));
        }
        let mut params = params;
        params.retain(|k, _| AUTHORIZATION_PARAMS.contains(&k.as_str()));
        if params.values().map(String::len).sum::<usize>() > 8192 {
            return Ok(Err(refusal("invalid_request", "the request is longer than 8 KiB")));
        }
        let handle = random::new_token();
        let t = now();
        let record = OneTimeSecret {
            id: OneTimeSecret::id_for(Purpose::PushedRequest, Uuid::now_v7()),
            purpose: Purpose::PushedRequest,
            user_id: None,
            token_hash: Some(random::token_hash(&handle).to_vec()),
            code_hash: None,
            target: Some(client.id.to_string()),
            amr: Vec::new(),
            method: None,
            created_at: t,
            expires_at: t + PAR_TTL,
            attempts_left: 1,
            budget_until: t + PAR_TTL,
            sealed: Some(self.seal(SEAL_PUSHED, &params)?),
            issued: None,
        };
        self.core.db(move |s| s.write(|tx| Ok(tx.put_one_time(&record)?))).await?;
        Ok(Ok((format!("{REQUEST_URI_PREFIX}{handle}"), PAR_TTL)))
    }

    /// The pushed request `uri` names, spent by this use; `None` when unknown, spent, expired or
    /// another client's.
    pub(super) async fn take_pushed(&self, client: &Client, uri: &str) -> Result<Option<Params>> {
        let Some(handle) = uri.strip_prefix(REQUEST_URI_PREFIX).and_then(OpaqueToken::parse) else {
            return Ok(None);
        };
        let hash = handle.hash();
        let client_id = client.id.to_string();
        let record = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let Some(r) = tx.one_time_by_token(&hash)?.filter(|r| r.purpose == Purpose::PushedRequest) else {
                        return Ok(None);
                    };
                    tx.delete_one_time(&r.id)?;
                    Ok(Some(r))
                })
            })
            .await?;
        Ok(record
            .filter(|r| r.expires_at > now() && r.target.as_deref() == Some(client_id.as_str()))
            .and_then(|r| r.sealed)
            .and_then(|s| self.open(SEAL_PUSHED, &s)))
    }
}
