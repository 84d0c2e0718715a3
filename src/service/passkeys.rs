//! Passkeys (WebAuthn, discoverable credentials with user verification): enrolment, sign-in
//! without an account name, and the user's list. Ceremonies wait in the shared stash, so that
//! any node finishes what another began; their expiry travels inside them.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, Passkey as Credential, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::{
    authority::{Authority, Principal},
    core::{Core, security_event},
    db::Tx,
    issuing::{Authn, ClientInfo, Opener, TokenPair, end_sessions, open_session},
    mfa::fresh_recovery_codes,
    one_time::Shape,
    outbox::{Outbox, Recipient},
    sessions::Sessions,
    tokens::AuthContext,
};
use crate::{
    error::{Error, FieldError, Result},
    messages::MessageKind,
    model::{OneTimeSecret, Passkey, Purpose, UnixTime, User, now},
    security::{limits::RouteClass, random, token::OpaqueToken},
};

/// Passkeys one account may hold.
const MAX_PASSKEYS: usize = 50;

/// Who enrols a passkey: a signed-in caller (within the step-up window), or the bearer of an
/// enrolment token (a passwordless sign-up, a recovery, a login a role sends to enrolment).
#[derive(Debug, Clone)]
pub enum Enroller {
    Session(Box<AuthContext>),
    Token(String),
}

/// How an enrolment token came to be: the way in it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolVia {
    /// A passwordless sign-up.
    Signup,
    /// A recovery code (rung 3).
    RecoveryCode,
    /// A mailed link or code (rung 4).
    Recovery,
    /// An operator's link (rung 5).
    RecoveryLink,
    /// The enrol-only `mfa_token` of a login a role sends to enrolment.
    SecondFactor,
}

impl EnrolVia {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            EnrolVia::Signup => "signup",
            EnrolVia::RecoveryCode => "recovery_code",
            EnrolVia::Recovery => "recovery",
            EnrolVia::RecoveryLink => "recovery_link",
            EnrolVia::SecondFactor => "mfa_enrolment",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [EnrolVia::Signup, EnrolVia::RecoveryCode, EnrolVia::Recovery, EnrolVia::RecoveryLink]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Rungs 3 to 5 of the recovery ladder: what they enrol ends every other session and is told.
    fn is_recovery(self) -> bool {
        matches!(self, EnrolVia::RecoveryCode | EnrolVia::Recovery | EnrolVia::RecoveryLink)
    }
}

/// A ceremony under way, as the stash keeps it.
#[derive(Serialize, Deserialize)]
struct Ceremony {
    expires_at: UnixTime,
    step: Step,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Step {
    Register {
        user_id: Uuid,
        /// The session or enrolment token that began it; only the same may finish it.
        by: String,
        state: PasskeyRegistration,
    },
    SignIn {
        state: DiscoverableAuthentication,
    },
}

/// Who is enrolling, as resolved.
struct Enrolling {
    user_id: Uuid,
    by: String,
    /// For a token: its one-time secret id and how it came to be.
    token: Option<(String, EnrolVia)>,
    /// The name shown in the authenticator when the account is not there (a sign-up that only
    /// looked new).
    fallback_name: Option<String>,
}

/// Makes the enrolment token of `user` (`method` says how it came to be). The caller stores it.
pub(super) fn enrolment_secret(
    core: &Core,
    user: Uuid,
    via: EnrolVia,
    name: Option<String>,
) -> (OneTimeSecret, String) {
    let id = OneTimeSecret::id_for(Purpose::PasskeyEnrol, Uuid::now_v7());
    let ttl = core.cfg.passkeys.enrolment_ttl.as_secs();
    let mut issued = core.issue_secret(id, Purpose::PasskeyEnrol, Some(user), name, ttl, Shape::TokenOnly);
    issued.secret.method = Some(via.as_str().to_owned());
    let token = issued.token.unwrap_or_default();
    (issued.secret, token)
}

fn rejected(e: &WebauthnError) -> Error {
    let why = match e {
        WebauthnError::UserNotVerified => "the authenticator did not verify its user (a PIN or biometric is required)",
        WebauthnError::InvalidRPOrigin | WebauthnError::InvalidRPIDHash => "it was made for another site",
        WebauthnError::MismatchedChallenge => "it answers another ceremony",
        WebauthnError::UserNotPresent => "the authenticator saw no user",
        WebauthnError::CredentialAlteredAlgFromRequest | WebauthnError::COSEKeyInvalidAlgorithm => {
            "its algorithm is not one offered"
        }
        _ => "the authenticator's answer does not verify",
    };
    Error::PasskeyRejected(why.to_owned())
}

fn malformed_credential(e: &serde_json::Error) -> Error {
    Error::Malformed(vec![FieldError::new(
        "credential",
        "invalid_credential",
        format!("credential must be what PublicKeyCredential.toJSON() returns: {e}"),
    )])
}

/// A passkey's name: trimmed, 1 to 64 characters, no control characters.
pub(super) fn check_name(name: Option<&str>) -> Result<String> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Ok("Passkey".to_owned());
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "invalid_name", "a passkey name is 1 to 64 characters, none a control"));
    }
    Ok(name.to_owned())
}

/// Whether the account keeps a way in besides `passkey` (a password, an identity, another passkey).
fn other_way_in(tx: &mut Tx<'_>, u: &User, passkey: Uuid) -> Result<bool> {
    Ok(u.password_hash.is_some()
        || !tx.identities_of(u.id)?.is_empty()
        || tx.passkeys_of(u.id)?.iter().any(|p| p.id != passkey))
}

/// The passkeys area.
#[derive(Clone)]
pub struct Passkeys {
    core: Arc<Core>,
    opener: Opener,
    sessions: Sessions,
    outbox: Outbox,
    webauthn: Arc<OnceLock<Option<Webauthn>>>,
}

impl Passkeys {
    pub(super) fn new(core: Arc<Core>, opener: Opener, sessions: Sessions, outbox: Outbox) -> Self {
        Self { core, opener, sessions, outbox, webauthn: Arc::new(OnceLock::new()) }
    }

    /// The relying party: the host of `server.public_url`, which must be a name.
    fn webauthn(&self) -> Result<&Webauthn> {
        let built = self.webauthn.get_or_init(|| {
            let origin = Url::parse(&self.core.public_url()).ok()?;
            let rp_id = origin.domain()?.to_owned();
            let built = WebauthnBuilder::new(&rp_id, &origin)
                .ok()?
                .rp_name(&self.core.cfg.messages.product_name)
                .timeout(self.core.cfg.passkeys.ceremony_ttl.0)
                .build();
            match built {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "passkeys are unavailable");
                    None
                }
            }
        });
        built.as_ref().ok_or(Error::PasskeysUnavailable)
    }

    async fn put_ceremony(&self, step: Step) -> Result<String> {
        let ttl = self.core.cfg.passkeys.ceremony_ttl.0;
        let ceremony = Ceremony { expires_at: now() + ttl.as_secs(), step };
        let bytes = serde_json::to_vec(&ceremony).map_err(|e| Error::Internal(format!("ceremony: {e}")))?;
        let handle = random::new_token();
        let key = stash_key(&handle);
        self.core.stash.put(&key, bytes, ttl).await.map_err(|e| Error::StorageUnavailable(e.to_string()))?;
        Ok(handle)
    }

    /// The ceremony, taken: whatever follows, it cannot be finished twice.
    async fn take_ceremony(&self, handle: &str) -> Result<Step> {
        let Some(token) = OpaqueToken::parse(handle) else { return Err(Error::InvalidCeremony) };
        let key = stash_key(token.as_str());
        let bytes = self.core.stash.take(&key).await.map_err(|e| Error::StorageUnavailable(e.to_string()))?;
        let ceremony: Ceremony = bytes.and_then(|b| serde_json::from_slice(&b).ok()).ok_or(Error::InvalidCeremony)?;
        if ceremony.expires_at <= now() {
            return Err(Error::InvalidCeremony);
        }
        Ok(ceremony.step)
    }

    async fn enrolling(&self, who: &Enroller) -> Result<Enrolling> {
        match who {
            Enroller::Session(ctx) => {
                self.core.require_recent_auth(ctx)?;
                Ok(Enrolling {
                    user_id: ctx.user_id,
                    by: format!("session:{}", ctx.session_id),
                    token: None,
                    fallback_name: None,
                })
            }
            Enroller::Token(token) => {
                let hash = OpaqueToken::parse(token).ok_or(Error::InvalidEnrolmentToken)?.hash();
                let found = self.core.db(move |s| s.read(|tx| Ok(tx.one_time_by_token(&hash)?))).await?;
                let secret = found
                    .filter(|s| matches!(s.purpose, Purpose::PasskeyEnrol | Purpose::MfaEnrol) && s.expires_at > now())
                    .ok_or(Error::InvalidEnrolmentToken)?;
                let user_id = secret.user_id.ok_or(Error::InvalidEnrolmentToken)?;
                let via = match secret.purpose {
                    Purpose::PasskeyEnrol => {
                        secret.method.as_deref().and_then(EnrolVia::parse).ok_or(Error::InvalidEnrolmentToken)?
                    }
                    _ => {
                        // A login a role sends to enrolment enrols a first factor only: an
                        // account with a passkey signs in with it.
                        let held = self.core.db(move |s| s.read(|tx| Ok(tx.passkeys_of(user_id)?))).await?;
                        if !held.is_empty() {
                            return Err(Error::InvalidEnrolmentToken);
                        }
                        EnrolVia::SecondFactor
                    }
                };
                Ok(Enrolling {
                    user_id,
                    by: format!("token:{}", hex(&hash)),
                    token: Some((secret.id, via)),
                    fallback_name: secret.target,
                })
            }
        }
    }

    /// Starts enrolling a passkey: the options for `navigator.credentials.create()`, and the
    /// ceremony that finishes it.
    pub async fn begin_registration(&self, who: &Enroller) -> Result<(String, Value)> {
        let webauthn = self.webauthn()?;
        let e = self.enrolling(who).await?;
        let user_id = e.user_id;
        let (user, existing) =
            self.core.db(move |s| s.read(|tx| Ok((tx.user(user_id)?, tx.passkeys_of(user_id)?)))).await?;
        let name = match &user {
            Some(u) => u.email.clone().or(u.phone.clone()).or(u.username.clone()).unwrap_or_else(|| u.id.to_string()),
            // A sign-up that only looked new (its address is taken): it goes through the same
            // steps, and nothing is stored at the end.
            None if e.token.is_some() => e.fallback_name.clone().unwrap_or_default(),
            None => return Err(Error::NotFound("user")),
        };
        if user.as_ref().is_some_and(|u| !u.is_active()) {
            return Err(Error::AccountDisabled);
        }
        let exclude: Vec<CredentialID> = existing.iter().map(|p| CredentialID::from(p.credential_id.clone())).collect();
        let (ccr, state) = webauthn
            .start_passkey_registration(user_id, &name, &name, Some(exclude))
            .map_err(|e| Error::Internal(format!("webauthn: {e}")))?;
        let mut options = serde_json::to_value(&ccr.public_key).map_err(|e| Error::Internal(e.to_string()))?;
        // Discoverable credentials only: signing in names no account.
        options["authenticatorSelection"] =
            json!({"residentKey": "required", "requireResidentKey": true, "userVerification": "required"});
        let handle = self.put_ceremony(Step::Register { user_id, by: e.by, state }).await?;
        Ok((handle, options))
    }

    /// Finishes enrolling: the authenticator's answer is checked against the ceremony, and the
    /// passkey stored. A first passkey on an account without recovery codes brings ten, shown
    /// once. A recovery rung (3 to 5) ends every other session and tells the user.
    pub async fn finish_registration(
        &self,
        who: &Enroller,
        ceremony: &str,
        credential: Value,
        name: Option<&str>,
        client: ClientInfo,
    ) -> Result<(Passkey, Vec<String>)> {
        let webauthn = self.webauthn()?;
        let name = check_name(name)?;
        let step = self.take_ceremony(ceremony).await?;
        let e = self.enrolling(who).await?;
        let Step::Register { user_id, by, state } = step else { return Err(Error::InvalidCeremony) };
        if user_id != e.user_id || by != e.by {
            return Err(Error::InvalidCeremony);
        }
        let transports: Vec<String> = credential["response"]["transports"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).filter(|t| t.len() <= 32).take(8).map(str::to_owned).collect())
            .unwrap_or_default();
        // The browser says whether the credential is discoverable (credProps); one it says is not
        // could never sign in without a name.
        if credential["clientExtensionResults"]["credProps"]["rk"] == json!(false) {
            return Err(Error::PasskeyRejected("the authenticator did not keep a discoverable credential".into()));
        }
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| malformed_credential(&e))?;
        let cred = webauthn.finish_passkey_registration(&reg, &state).map_err(|e| rejected(&e))?;
        let stored = serde_json::to_value(&cred).map_err(|e| Error::Internal(e.to_string()))?;
        let flag = |f: &str| stored["cred"][f].as_bool().unwrap_or(false);
        let t = now();
        let passkey = Passkey {
            id: Uuid::now_v7(),
            user_id,
            credential_id: cred.cred_id().to_vec(),
            name,
            credential: stored.to_string(),
            sign_count: stored["cred"]["counter"].as_u64().and_then(|c| u32::try_from(c).ok()).unwrap_or(0),
            backup_eligible: flag("backup_eligible"),
            backed_up: flag("backup_state"),
            transports,
            created_at: t,
            last_used_at: 0,
        };
        let (codes, hashes) = fresh_recovery_codes(&self.core.data_key, user_id);
        let notices = match e.token {
            Some((_, via)) if via.is_recovery() => self.recovery_notices(user_id, &client).await?,
            Some((_, EnrolVia::Signup)) => Vec::new(),
            // A new way in, added by a session or a login's enrolment: the owner hears of it.
            _ => self.added_notice(user_id, &passkey.name, &client).await?,
        };
        let token = e.token.clone();
        let session = match who {
            Enroller::Session(ctx) => Some(ctx.session_id),
            Enroller::Token(_) => None,
        };
        let p = passkey.clone();
        let given = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    let via = match &token {
                        Some((id, via)) => {
                            // Spent in the step that uses it: one token, one passkey.
                            if !tx.delete_one_time(id)? {
                                return Err(Error::InvalidEnrolmentToken);
                            }
                            Some(*via)
                        }
                        None => None,
                    };
                    let Some(mut u) = tx.user(user_id)? else {
                        // A sign-up that only looked new: the answer of a first passkey, stored
                        // nowhere.
                        return if via.is_some() { Ok(true) } else { Err(Error::NotFound("user")) };
                    };
                    if !u.is_active() {
                        return Err(Error::AccountDisabled);
                    }
                    if tx.passkeys_of(user_id)?.len() >= MAX_PASSKEYS {
                        return Err(Error::PasskeyRejected(format!(
                            "an account holds at most {MAX_PASSKEYS} passkeys"
                        )));
                    }
                    tx.put_passkey(&p)?;
                    let codes_given = u.recovery_codes.is_empty();
                    if codes_given {
                        u.recovery_codes = hashes;
                    }
                    u.updated_at = tx.now();
                    tx.update_user(&u)?;
                    let via_name = via.map_or("session", EnrolVia::as_str);
                    tx.audit("user.passkey_added", Some(user_id), session, json!({"name": p.name, "via": via_name}))?;
                    if via.is_some_and(EnrolVia::is_recovery) {
                        end_sessions(tx, user_id, None, false)?;
                        tx.audit("user.recovered", Some(user_id), None, json!({"via": via_name}))?;
                    }
                    for m in &notices {
                        tx.emit(m)?;
                    }
                    Ok(codes_given)
                })
            })
            .await?;
        if given { Ok((passkey, codes)) } else { Ok((passkey, Vec::new())) }
    }

    /// What telling the user of a recovery sends: a message to every proven name.
    async fn recovery_notices(&self, user_id: Uuid, client: &ClientInfo) -> Result<Vec<crate::model::OutboxMessage>> {
        let Some(u) = self.core.db(move |s| s.read(|tx| Ok(tx.user(user_id)?))).await? else { return Ok(Vec::new()) };
        let locale = self.outbox.locale_of(Some(&u), None);
        let vars = std::collections::BTreeMap::from([
            ("time", crate::model::rfc3339(now())),
            ("ip", client.ip.map_or_else(|| "?".to_owned(), |ip| ip.to_string())),
        ]);
        let mut out = Vec::new();
        if let Some(email) = u.email.clone().filter(|_| u.email_verified) {
            let to = Recipient { address: email, locale: locale.clone() };
            out.push(self.outbox.message(MessageKind::RecoveryUsed, &to, vars.clone())?);
        }
        if let Some(phone) = u.phone.clone().filter(|_| u.phone_verified) {
            let to = Recipient { address: phone, locale };
            out.push(self.outbox.message(MessageKind::RecoveryUsedSms, &to, vars)?);
        }
        Ok(out)
    }

    /// The mail that tells the owner of a passkey added, to a proven email.
    async fn added_notice(
        &self,
        user_id: Uuid,
        name: &str,
        client: &ClientInfo,
    ) -> Result<Vec<crate::model::OutboxMessage>> {
        let Some(u) = self.core.db(move |s| s.read(|tx| Ok(tx.user(user_id)?))).await? else { return Ok(Vec::new()) };
        let Some(email) = u.email.clone().filter(|_| u.email_verified) else { return Ok(Vec::new()) };
        let locale = self.outbox.locale_of(Some(&u), None);
        let vars = std::collections::BTreeMap::from([
            ("name", name.to_owned()),
            ("time", crate::model::rfc3339(now())),
            ("ip", client.ip.map_or_else(|| "?".to_owned(), |ip| ip.to_string())),
        ]);
        let to = Recipient { address: email, locale };
        Ok(vec![self.outbox.message(MessageKind::PasskeyAdded, &to, vars)?])
    }

    /// The caller's passkeys, oldest first.
    pub async fn list(&self, user_id: Uuid) -> Result<Vec<Passkey>> {
        self.core.db(move |s| s.read(|tx| Ok(tx.passkeys_of(user_id)?))).await
    }

    pub async fn rename(&self, ctx: &AuthContext, id: Uuid, name: &str) -> Result<Passkey> {
        if name.trim().is_empty() {
            return Err(Error::invalid("name", "invalid_name", "a passkey name is 1 to 64 characters"));
        }
        let name = check_name(Some(name))?;
        let user_id = ctx.user_id;
        let session = ctx.session_id;
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let mut p = tx.passkey(id)?.filter(|p| p.user_id == user_id).ok_or(Error::NotFound("passkey"))?;
                    p.name = name;
                    tx.put_passkey(&p)?;
                    tx.audit("user.passkey_renamed", Some(user_id), Some(session), json!({"name": p.name}))?;
                    Ok(p)
                })
            })
            .await
    }

    /// Removes one of the caller's passkeys, after a recent sign-in; the last way in stays.
    pub async fn remove(&self, ctx: &AuthContext, id: Uuid) -> Result<()> {
        self.core.require_recent_auth(ctx)?;
        self.remove_for(ctx.user_id, id, Some(ctx.session_id), None).await
    }

    /// An administrator removes a user's passkey (never their last way in). Needs `users:write`
    /// and every permission the user has.
    pub async fn admin_remove(&self, by: &Principal, user_id: Uuid, id: Uuid) -> Result<()> {
        let authority = self.core.authority(by, "users:write")?;
        self.remove_for(user_id, id, None, Some(authority)).await
    }

    pub(super) async fn remove_for(
        &self,
        user_id: Uuid,
        id: Uuid,
        session: Option<Uuid>,
        authority: Option<Authority>,
    ) -> Result<()> {
        self.core
            .db(move |s| {
                s.write(|tx| {
                    let p = tx.passkey(id)?.filter(|p| p.user_id == user_id).ok_or(Error::NotFound("passkey"))?;
                    let u = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    if let Some(a) = &authority {
                        a.may_change(&u.roles)?;
                    }
                    if !other_way_in(tx, &u, id)? {
                        return Err(Error::LastLoginMethod);
                    }
                    tx.delete_passkey(id)?;
                    tx.audit("user.passkey_removed", Some(user_id), session, json!({"name": p.name}))?;
                    Ok(())
                })
            })
            .await
    }

    /// Starts a sign-in: options for `navigator.credentials.get()` that name no credential, so
    /// the authenticator offers the accounts it holds.
    pub async fn begin_sign_in(&self) -> Result<(String, Value)> {
        let webauthn = self.webauthn()?;
        let (rcr, state) =
            webauthn.start_discoverable_authentication().map_err(|e| Error::Internal(format!("webauthn: {e}")))?;
        let options = serde_json::to_value(&rcr.public_key).map_err(|e| Error::Internal(e.to_string()))?;
        let handle = self.put_ceremony(Step::SignIn { state }).await?;
        Ok((handle, options))
    }

    /// Finishes a sign-in. The passkey verifies its user on the device, so the session counts
    /// as two factors (`amr` `pop` and `hwk` or `swk`) and satisfies a role's `require_mfa`.
    pub async fn finish_sign_in(
        &self,
        ceremony: &str,
        credential: Value,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let result = self.sign_in(ceremony, credential, device_name, client).await;
        self.core.metrics.login(match &result {
            Ok(_) => "success",
            Err(e) => e.code(),
        });
        result
    }

    async fn sign_in(
        &self,
        ceremony: &str,
        credential: Value,
        device_name: Option<String>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let webauthn = self.webauthn()?;
        let cred: PublicKeyCredential = serde_json::from_value(credential).map_err(|e| malformed_credential(&e))?;
        let Step::SignIn { state } = self.take_ceremony(ceremony).await? else { return Err(Error::InvalidCeremony) };
        let (handle, cred_id) =
            webauthn.identify_discoverable_authentication(&cred).map_err(|_| Error::InvalidPasskey)?;
        let cred_id = cred_id.to_vec();
        let found = self.core.db(move |s| s.read(|tx| Ok(tx.passkey_by_credential(&cred_id)?))).await?;
        let ip = client.ip;
        let fail = |user: Option<Uuid>, reason: &str| {
            security_event("passkey_failed", ip);
            self.core.audit_later(self.core.audit_event(
                "user.login_failed",
                false,
                user,
                None,
                json!({"reason": reason, "method": "passkey"}),
            ));
            Error::InvalidPasskey
        };
        let Some(passkey) = found else { return Err(fail(None, "unknown_passkey")) };
        // The user handle the authenticator returned must be the credential's own user.
        if passkey.user_id != handle {
            return Err(fail(Some(passkey.user_id), "user_handle_mismatch"));
        }
        self.core.check_account_limit(RouteClass::Login, &format!("passkey:{}", passkey.user_id), ip).await?;
        let mut stored: Credential =
            serde_json::from_str(&passkey.credential).map_err(|e| Error::Internal(format!("stored passkey: {e}")))?;
        let outcome = match webauthn.finish_discoverable_authentication_v2(&cred, state, &stored) {
            Ok(o) => o,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                let user = passkey.user_id;
                let name = passkey.name.clone();
                self.core
                    .db(move |s| {
                        s.write(|tx| {
                            tx.audit_failure("user.passkey_cloned", Some(user), None, json!({"name": name}))?;
                            Ok(())
                        })
                    })
                    .await?;
                return Err(fail(Some(passkey.user_id), "sign_count_regressed"));
            }
            Err(_) => return Err(fail(Some(passkey.user_id), "invalid_assertion")),
        };
        stored.update_credential(&outcome);
        let user = self.core.user(passkey.user_id).await?;
        if !user.is_active() {
            return Err(Error::AccountDisabled);
        }
        if let Some(e) = self.sessions.required_confirmation_missing(&user) {
            return Err(e);
        }
        let amr = vec!["pop".to_owned(), if passkey.backup_eligible { "swk" } else { "hwk" }.to_owned()];
        let (opening, refresh) = self.opener.prepare(&user, Authn::now(amr), "passkey", None, device_name, client)?;
        let session = opening.session.clone();
        let mut updated = passkey;
        updated.credential = serde_json::to_string(&stored).map_err(|e| Error::Internal(e.to_string()))?;
        updated.sign_count = outcome.counter();
        updated.backed_up = outcome.backup_state();
        updated.last_used_at = now();
        let (user, permissions) = self
            .core
            .db(move |s| {
                s.write(|tx| {
                    // A concurrent removal wins.
                    let Some(current) = tx.passkey(updated.id)? else { return Err(Error::InvalidPasskey) };
                    // Two answers with one count (a clone racing the original): the second loses.
                    if current.sign_count > updated.sign_count
                        || (updated.sign_count > 0 && current.sign_count == updated.sign_count)
                    {
                        return Err(Error::InvalidPasskey);
                    }
                    tx.put_passkey(&updated)?;
                    open_session(tx, opening)
                })
            })
            .await?;
        self.opener.opened(&user, &session, refresh, permissions)
    }
}

/// Where a ceremony waits: by hash of its handle.
fn stash_key(handle: &str) -> String {
    format!("passkey-ceremony:{}", hex(&random::token_hash(handle)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
