//! The user's consents to relying parties: listed, and taken back.

use super::*;

impl Provider {
    /// The clients the user allowed, with their names (`None` for a client since removed).
    pub async fn consents(&self, user_id: Uuid) -> Result<Vec<(Consent, Option<String>)>> {
        self.core
            .db(move |s| {
                s.read(|tx| {
                    let user = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    let mut out = Vec::new();
                    for c in user.consents {
                        let name = tx.client(c.client_id)?.map(|c| c.name);
                        out.push((c, name));
                    }
                    Ok(out)
                })
            })
            .await
    }

    /// Takes back the user's consent to a client and ends the client's sessions of this user:
    /// the next sign-in there asks again.
    pub async fn revoke_consent(&self, user_id: Uuid, client_id: Uuid) -> Result<()> {
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let mut user = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    if !user.consents.iter().any(|c| c.client_id == client_id) {
                        return Err(Error::NotFound("consent"));
                    }
                    user.consents.retain(|c| c.client_id != client_id);
                    user.updated_at = tx.now();
                    tx.update_user(&user)?;
                    let ended: Vec<Uuid> = tx
                        .sessions_of(user_id)?
                        .into_iter()
                        .filter(|s| s.client_id == Some(client_id))
                        .map(|s| s.id)
                        .collect();
                    tx.revoke_sessions(&ended)?;
                    tx.audit(
                        "consent.revoked",
                        Some(user_id),
                        None,
                        json!({"client_id": client_id, "sessions_ended": ended.len()}),
                    )?;
                    Ok(())
                })
            })
            .await
    }
}
