//! Copying one database into another (`authd migrate`), through the ports only, so any backend
//! can be either end. Every write is an upsert: running it twice changes nothing.

use super::{R, Store, StoreError};

/// One table's tally: what the source holds, and what the target holds afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub table: &'static str,
    pub source: usize,
    pub target: usize,
}

/// Copies everything from `from` into `to` in one target transaction, then counts both sides.
/// Fails when the target holds fewer records of a kind than the source.
pub fn copy_all(from: &Store, to: &Store) -> R<Vec<Tally>> {
    let source = from.read(|tx| {
        Ok::<_, StoreError>((
            tx.users()?,
            tx.all_sessions()?,
            tx.all_refresh()?,
            tx.revocations()?,
            tx.signing_keys()?,
            tx.roles()?,
            tx.clients()?,
            tx.audit_events(&super::AuditQuery::default(), usize::MAX, &|_| true)?,
            tx.stored_webhooks()?,
            tx.deliveries()?,
            tx.one_time_secrets()?,
            tx.all_identities()?,
            tx.all_passkeys()?,
        ))
    })?;
    let (
        users,
        sessions,
        refresh,
        revocations,
        keys,
        roles,
        clients,
        audit,
        webhooks,
        outbox,
        one_time,
        identities,
        passkeys,
    ) = source;
    to.write(|tx| {
        for u in &users {
            tx.update_user(u)?;
        }
        for s in &sessions {
            tx.put_session(s)?;
        }
        for (hash, r) in &refresh {
            tx.put_refresh(hash, r)?;
        }
        for r in &revocations {
            tx.put_revocation(r)?;
        }
        for k in &keys {
            tx.put_signing_key(k)?;
        }
        for r in &roles {
            tx.put_role(r)?;
        }
        for c in &clients {
            tx.put_client(c)?;
        }
        for e in audit.iter().rev() {
            tx.insert_audit(e)?;
        }
        for w in &webhooks {
            tx.put_webhook(w)?;
        }
        for d in &outbox {
            tx.put_delivery(d)?;
        }
        for s in &one_time {
            tx.put_one_time(s)?;
        }
        for i in &identities {
            tx.put_identity(i)?;
        }
        for p in &passkeys {
            tx.put_passkey(p)?;
        }
        Ok::<_, StoreError>(())
    })?;
    let target = to.read(|tx| {
        Ok::<_, StoreError>([
            tx.users()?.len(),
            tx.all_sessions()?.len(),
            tx.all_refresh()?.len(),
            tx.revocations()?.len(),
            tx.signing_keys()?.len(),
            tx.roles()?.len(),
            tx.clients()?.len(),
            tx.audit_events(&super::AuditQuery::default(), usize::MAX, &|_| true)?.len(),
            tx.stored_webhooks()?.len(),
            tx.deliveries()?.len(),
            tx.one_time_secrets()?.len(),
            tx.all_identities()?.len(),
            tx.all_passkeys()?.len(),
        ])
    })?;
    let names = [
        "users",
        "sessions",
        "refresh_tokens",
        "revocations",
        "signing_keys",
        "roles",
        "clients",
        "audit",
        "webhooks",
        "webhook_outbox",
        "one_time_secrets",
        "identities",
        "passkeys",
    ];
    let counts = [
        users.len(),
        sessions.len(),
        refresh.len(),
        revocations.len(),
        keys.len(),
        roles.len(),
        clients.len(),
        audit.len(),
        webhooks.len(),
        outbox.len(),
        one_time.len(),
        identities.len(),
        passkeys.len(),
    ];
    let tallies: Vec<Tally> = names
        .into_iter()
        .zip(counts)
        .zip(target)
        .map(|((table, source), target)| Tally { table, source, target })
        .collect();
    if let Some(short) = tallies.iter().find(|t| t.target < t.source) {
        return Err(StoreError::Backend(format!(
            "{}: the source holds {}, the target only {}",
            short.table, short.source, short.target
        )));
    }
    Ok(tallies)
}
