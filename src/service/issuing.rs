//! Issuing sessions: what a session's opening writes and the tokens it hands out, shared by
//! every way in (password, second factor, upstream login), and the ending of sessions.

use std::{net::IpAddr, sync::Arc};

use uuid::Uuid;

use super::{core::Core, db::Tx, id_tokens::LogoutNotice, outbox::Outbox};
use crate::{
    error::{Error, Result},
    model::{Channel, DeliveryState, OutboxMessage, RefreshRecord, Session, User, now, now_millis},
    security::random,
};

/// Where a request came from, as recorded on the session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// How the user authenticated, for the session it opens.
#[derive(Debug, Clone)]
pub struct Authn {
    /// RFC 8176 methods: `pwd`, `otp`, `fed`…
    pub amr: Vec<String>,
    /// Through a login provider: when it says the user authenticated there, 0 when it does not
    /// say. `None` when the user authenticated at authd, now.
    pub upstream_auth_time: Option<crate::model::UnixTime>,
}

impl Authn {
    /// Authenticated at authd, just now, with `amr`.
    pub fn now(amr: Vec<String>) -> Self {
        Self { amr, upstream_auth_time: None }
    }
}

/// OAuth 2.0-shaped token response.
#[derive(Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub session_id: Uuid,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair").field("session_id", &self.session_id).finish_non_exhaustive()
    }
}

fn clip(s: Option<String>, max: usize) -> Option<String> {
    s.map(|s| s.chars().take(max).collect())
}

/// Prepares and finishes the opening of sessions.
#[derive(Clone)]
pub struct Opener {
    core: Arc<Core>,
    outbox: Outbox,
}

impl Opener {
    pub(super) fn new(core: Arc<Core>, outbox: Outbox) -> Self {
        Self { core, outbox }
    }

    /// Opens a session for a user who has authenticated as `how` says.
    pub(super) async fn start(
        &self,
        user: User,
        how: Authn,
        method: &str,
        rehash: Option<String>,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let (opening, refresh) = self.prepare(&user, how, method, rehash, device_name, client)?;
        let session = opening.session.clone();
        let (user, permissions) = self.core.db(move |s| s.write(|tx| open_session(tx, opening))).await?;
        self.opened(&user, &session, refresh, permissions)
    }

    /// Everything a session's opening writes, made before its transaction (the notice is
    /// rendered from templates), and the refresh token only the client will see.
    pub(super) fn prepare(
        &self,
        user: &User,
        how: Authn,
        method: &str,
        rehash: Option<String>,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<(Opening, String)> {
        let t = now();
        let refresh = random::new_token();
        let session = Session {
            id: Uuid::now_v7(),
            user_id: user.id,
            device_name: clip(device_name, 100),
            user_agent: clip(client.user_agent, 300),
            ip: client.ip.map(|ip| ip.to_string()),
            created_at: t,
            last_used_at: t,
            expires_at: t + self.core.cfg.tokens.refresh_ttl.as_secs(),
            absolute_expires_at: t + self.core.cfg.tokens.session_max.as_secs(),
            generation: 0,
            amr: how.amr,
            auth_time: t,
            client_id: None,
            parent: None,
            scope: None,
            upstream_auth_time: how.upstream_auth_time,
        };
        let device = device_fingerprint(session.user_agent.as_deref());
        let notice = self.new_device_notice(user, &session, &device)?;
        let opening = Opening {
            refresh_hash: random::token_hash(&refresh),
            session,
            method: method.to_owned(),
            rehash,
            device,
            notice,
            include_permissions: self.core.cfg.tokens.include_permissions,
            checked_hash: user.password_hash.clone(),
            checked_authz_gen: user.authz_gen,
        };
        Ok((opening, refresh))
    }

    /// The tokens of a session just opened.
    pub(super) fn opened(
        &self,
        user: &User,
        session: &Session,
        refresh: String,
        permissions: Option<Vec<String>>,
    ) -> Result<TokenPair> {
        tracing::info!(user_id = %user.id, session_id = %session.id, ip = session.ip.as_deref().unwrap_or("-"), "login ok");
        self.token_pair(user, session, refresh, permissions)
    }

    /// The notice a login from a device not seen before sends, unless the user opted out or
    /// this is the account's first device.
    fn new_device_notice(&self, user: &User, session: &Session, device: &[u8]) -> Result<Option<OutboxMessage>> {
        let wanted = !user.new_device_notices_off
            && !user.known_devices.is_empty()
            && !user.known_devices.iter().any(|d| d == device);
        let Some(email) = user.email.as_ref().filter(|_| wanted) else { return Ok(None) };
        let locale = self.outbox.locale_of(Some(user), None);
        let vars = std::collections::BTreeMap::from([
            ("device", session.user_agent.clone().unwrap_or_else(|| "?".into())),
            ("ip", session.ip.clone().unwrap_or_else(|| "?".into())),
            ("time", crate::model::rfc3339(session.created_at)),
        ]);
        let to = super::outbox::Recipient { address: email.clone(), locale };
        Ok(Some(self.outbox.message(crate::messages::MessageKind::NewDevice, &to, vars)?))
    }

    pub(super) fn token_pair(
        &self,
        user: &User,
        session: &Session,
        refresh_token: String,
        permissions: Option<Vec<String>>,
    ) -> Result<TokenPair> {
        let (access_token, expires_in) = super::tokens::mint_access_token(&self.core, user, session, permissions)?;
        Ok(TokenPair {
            access_token,
            expires_in,
            refresh_token,
            refresh_expires_in: session.expires_at.min(session.absolute_expires_at).saturating_sub(now()),
            session_id: session.id,
        })
    }
}

/// A session about to open (see [`Opener::prepare`]).
pub(super) struct Opening {
    pub session: Session,
    refresh_hash: [u8; 32],
    method: String,
    /// A new hash of the password just checked, when its parameters are out of date.
    rehash: Option<String>,
    device: Vec<u8>,
    notice: Option<OutboxMessage>,
    include_permissions: bool,
    /// The password hash and authorization generation of the user as the login checked it.
    checked_hash: Option<String>,
    checked_authz_gen: u64,
}

/// Opens a session inside `tx`, with the user as the transaction reads it: a concurrent
/// disable or delete wins. Returns that user and the permissions its token carries.
pub(super) fn open_session(tx: &mut Tx<'_>, o: Opening) -> Result<(User, Option<Vec<String>>)> {
    let mut current = tx.user(o.session.user_id)?.ok_or(Error::InvalidCredentials)?;
    if !current.is_active() {
        return Err(Error::AccountDisabled);
    }
    // A reset, password change or revocation that committed while the login was being checked
    // wins: what was checked is no longer what the account is.
    let same_hash = match (&current.password_hash, &o.checked_hash) {
        (Some(a), Some(b)) => bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes())),
        (None, None) => true,
        _ => false,
    };
    if !same_hash || current.authz_gen != o.checked_authz_gen {
        return Err(Error::InvalidCredentials);
    }
    let mut changed = false;
    if let Some(phc) = o.rehash {
        current.password_hash = Some(phc);
        changed = true;
    }
    if !current.known_devices.contains(&o.device) {
        if current.known_devices.len() >= KNOWN_DEVICES {
            current.known_devices.remove(0);
        }
        current.known_devices.push(o.device);
        changed = true;
        if let Some(n) = &o.notice {
            tx.emit(n)?;
        }
    }
    if changed {
        current.updated_at = tx.now();
        tx.update_user(&current)?;
    }
    let s = &o.session;
    tx.put_session(s)?;
    tx.put_refresh(&o.refresh_hash, &RefreshRecord { session_id: s.id, used: false, expires_at: s.expires_at })?;
    let details = serde_json::json!({"device_name": s.device_name, "amr": s.amr, "method": o.method});
    tx.audit("user.logged_in", Some(current.id), Some(s.id), details)?;
    let permissions = permissions_in(tx, o.include_permissions, &current.roles)?;
    Ok((current, permissions))
}

/// Ends the user's sessions (all, or all but `keep`), with a cut-off of every access token
/// issued so far when `cutoff`; returns how many sessions ended.
pub(super) fn end_sessions(tx: &mut Tx<'_>, user_id: Uuid, keep: Option<Uuid>, cutoff: bool) -> Result<usize> {
    let sessions = tx.sessions_of(user_id)?;
    let ending = |s: &&Session| Some(s.id) != keep && s.parent.is_none_or(|p| Some(p) != keep);
    // The applications signed in through an ending browser session hear of it.
    for browser in sessions.iter().filter(ending).filter(|s| s.client_id.is_none()) {
        let children: Vec<&Session> = sessions.iter().filter(|s| s.parent == Some(browser.id)).collect();
        queue_logouts(tx, user_id, browser.id, &children)?;
    }
    let sids: Vec<Uuid> = sessions.iter().filter(ending).map(|s| s.id).collect();
    let ended = tx.revoke_sessions(&sids)?;
    if cutoff {
        tx.cut_off_user(user_id)?;
    }
    Ok(ended)
}

/// Devices remembered per user for new-device notices.
const KNOWN_DEVICES: usize = 20;

/// What tells devices apart: a hash of the user agent (never stored in clear on the user).
fn device_fingerprint(user_agent: Option<&str>) -> Vec<u8> {
    random::token_hash(user_agent.unwrap_or("")).to_vec()
}

/// The throttling and rate-limit key of an existing account, whichever name it was reached by.
pub(super) fn account_key(id: Uuid) -> String {
    format!("u:{id}")
}

/// The permissions a token gets, read in the same transaction as the user it is minted for, so
/// that they match its authorization generation.
pub(super) fn permissions_in(
    tx: &Tx<'_>,
    include: bool,
    roles: &[String],
) -> Result<Option<Vec<String>>, crate::store::StoreError> {
    Ok(if include { Some(crate::model::granted_permissions(&tx.roles()?, roles)) } else { None })
}

/// Ends session `sid` of the user and, when it is a browser session, every relying party's
/// session under it, queueing their back-channel logouts: what ending any one session calls, so
/// that a browser session ended from the sessions list takes its clients' sessions along.
/// Returns how many sessions ended.
pub(super) fn end_with_children(tx: &mut Tx<'_>, user_id: Uuid, sid: Uuid) -> Result<usize> {
    let sessions = tx.sessions_of(user_id)?;
    if !sessions.iter().any(|s| s.id == sid) {
        return Ok(0);
    }
    let children: Vec<&Session> = sessions.iter().filter(|s| s.parent == Some(sid)).collect();
    queue_logouts(tx, user_id, sid, &children)?;
    let mut ended: Vec<Uuid> = children.iter().map(|s| s.id).collect();
    ended.push(sid);
    Ok(tx.revoke_sessions(&ended)?)
}

/// Queues a back-channel logout for each client of `children` (the relying parties' sessions
/// under browser session `sid`) that asked for one.
pub(super) fn queue_logouts(tx: &mut Tx<'_>, user_id: Uuid, sid: Uuid, children: &[&Session]) -> Result<()> {
    let mut notified = Vec::new();
    for child in children {
        let Some(cid) = child.client_id else { continue };
        if notified.contains(&cid) {
            continue;
        }
        notified.push(cid);
        let Some(uri) = tx.client(cid)?.and_then(|c| c.backchannel_logout_uri) else { continue };
        let notice = LogoutNotice { client_id: cid, sub: user_id, sid, jti: Uuid::now_v7() };
        let now_ms = now_millis();
        tx.emit(&OutboxMessage {
            id: notice.jti,
            channel: Channel::Logout,
            url: uri,
            endpoint_id: None,
            event: "backchannel_logout".into(),
            payload: serde_json::to_string(&notice).map_err(|e| Error::Internal(e.to_string()))?,
            created_ms: now_ms,
            next_attempt_ms: now_ms,
            attempts: 0,
            state: DeliveryState::Pending,
            last_error: None,
        })?;
    }
    Ok(())
}
