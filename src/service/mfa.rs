//! TOTP second factor (RFC 6238) with recovery codes: enrolment, the login step, removal, and
//! the operator's reset.

use totp_rs::{Algorithm, Builder, Totp};
use uuid::Uuid;

use super::{
    AuthContext, AuthService, Principal, TokenPair,
    one_time::{Presented, Shape, spend_secret},
    sessions::{ClientInfo, account_key},
};
use crate::{
    error::{Error, Result},
    model::{AuditEvent, OneTimeSecret, Purpose, TotpFactor, User, now},
    security::{random::random_bytes, sealed::DataKey},
};

/// Recovery codes handed out at enrolment.
const RECOVERY_CODES: usize = 10;

/// What enrolment shows once: the secret three ways.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    /// Base32, for typing into an authenticator.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code.
    pub qr_svg: String,
}

/// A second factor as typed at login or removal.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    Totp(String),
    Recovery(String),
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(secret.to_vec())
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(account.replace(':', " "))
        .build()
        .map_err(|e| Error::Internal(format!("totp: {e}")))
}

fn sealing_context(user: Uuid) -> String {
    format!("totp:{user}")
}

/// `xxxx-xxxx` from an alphabet without look-alikes.
fn recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes = random_bytes::<8>();
    let chars: String = bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

fn normalize_recovery(code: &str) -> String {
    code.trim().to_lowercase().replace([' ', '-'], "")
}

fn recovery_id(user: Uuid) -> String {
    format!("recovery:{user}")
}

/// Checks a factor against the user's; on success records what it spent (the TOTP step, or the
/// recovery code) on `u`.
fn check_factor(key: &DataKey, u: &mut User, factor: &SecondFactor, issuer: &str) -> Result<bool> {
    match factor {
        SecondFactor::Totp(code) => {
            let Some(f) = u.totp.as_mut() else { return Ok(false) };
            let secret = key
                .open(&sealing_context(u.id), &f.secret)
                .map_err(|e| Error::Internal(format!("totp secret: {e}")))?;
            let t = totp(&secret, issuer, "x")?;
            match t.check(code.trim(), now()) {
                // A code is never accepted twice, nor one older than the last accepted.
                Some(step) if step > f.last_step => {
                    f.last_step = step;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        SecondFactor::Recovery(code) => {
            let id = recovery_id(u.id);
            let typed = normalize_recovery(code);
            match u.recovery_codes.iter().position(|h| key.code_matches(&id, &typed, h)) {
                Some(i) => {
                    u.recovery_codes.remove(i);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
    }
}

impl AuthService {
    /// Issues the token of a login's second step (`MfaLogin`) or of an enrolment-only login
    /// (`MfaEnrol`), with the authentication methods passed so far.
    pub(super) async fn mfa_step(
        &self,
        user: &User,
        purpose: Purpose,
        device_name: Option<String>,
        first_factor: &[String],
        method: &str,
    ) -> Result<String> {
        let id = OneTimeSecret::id_for(purpose, Uuid::now_v7());
        let ttl = self.cfg.security.mfa_token_ttl.as_secs();
        let mut issued = self.issue_secret(id, purpose, user.id, device_name, ttl, Shape::TokenOnly);
        issued.secret.amr = first_factor.to_vec();
        issued.secret.method = Some(method.to_owned());
        let secret = issued.secret;
        self.db(move |s| s.write(|tx| Ok(tx.put_one_time(&secret)?))).await?;
        issued.token.ok_or_else(|| Error::Internal("no token issued".into()))
    }

    pub(super) fn mfa_required_by_roles(&self, user: &User) -> bool {
        let roles = self.roles_snapshot();
        user.roles.iter().filter_map(|r| roles.get(r)).any(|r| r.require_mfa)
    }

    /// The second step of a login: the `mfa_token` and a TOTP or recovery code. Wrong codes
    /// count toward the account's brute-force budget and burn the token after a few.
    pub async fn login_mfa(&self, mfa_token: &str, factor: SecondFactor, client: ClientInfo) -> Result<TokenPair> {
        let hash = crate::security::random::token_hash(mfa_token);
        let pending = self.db(move |s| s.read(|tx| Ok(tx.one_time_by_token(&hash)?))).await?;
        let pending =
            pending.filter(|p| p.purpose == Purpose::MfaLogin && p.expires_at > now()).ok_or(Error::InvalidMfaToken)?;
        let attempt = self
            .throttle
            .reserve(&account_key(pending.user_id), client.ip.map(|ip| self.ip_key(ip)))
            .await
            .map_err(|wait| Error::TooManyAttempts(wait.as_secs().saturating_add(1)))?;
        let key = self.data_key.clone();
        let issuer = self.cfg.messages.product_name.clone();
        let token = mfa_token.to_owned();
        let ev = self.audit_event("user.mfa_failed", false, Some(pending.user_id), None, serde_json::Value::Null);
        let outcome = self
            .db(move |s| {
                s.write(|tx| {
                    let Some(mut secret) = tx.one_time_by_token(&crate::security::random::token_hash(&token))? else {
                        return Ok(Err(Error::InvalidMfaToken));
                    };
                    let Some(mut u) = tx.user(secret.user_id)?.filter(User::has_totp) else {
                        return Ok(Err(Error::InvalidMfaToken));
                    };
                    if check_factor(&key, &mut u, &factor, &issuer)? {
                        tx.delete_one_time(&secret.id)?;
                        u.updated_at = now();
                        tx.update_user(&u)?;
                        return Ok(Ok((u, secret.target.clone(), secret.amr.clone(), secret.method.clone())));
                    }
                    secret.attempts_left = secret.attempts_left.saturating_sub(1);
                    if secret.attempts_left == 0 {
                        tx.delete_one_time(&secret.id)?;
                    } else {
                        tx.put_one_time(&secret)?;
                    }
                    tx.append_audit(&ev)?;
                    Ok(Err(Error::InvalidMfaCode))
                })
            })
            .await?;
        match outcome {
            Ok((user, device_name, mut amr, method)) => {
                attempt.succeeded().await;
                amr.push("otp".into());
                let method = method.unwrap_or_else(|| "password".into());
                self.start_session(user, amr, &method, None, device_name, client).await
            }
            Err(e) => {
                super::security_event("mfa_failed", client.ip);
                let _ = attempt.failed().await;
                Err(e)
            }
        }
    }

    /// Starts TOTP enrolment for the caller (needs a recent sign-in).
    pub async fn begin_totp(&self, ctx: &AuthContext) -> Result<TotpEnrolment> {
        self.require_recent_auth(ctx)?;
        self.begin_totp_for(ctx.user_id).await
    }

    async fn begin_totp_for(&self, user_id: Uuid) -> Result<TotpEnrolment> {
        let user = self.get_user(user_id).await?;
        if user.has_totp() {
            return Err(Error::MfaAlreadyEnabled);
        }
        let secret = random_bytes::<20>();
        let account = user.email.clone().or(user.phone.clone()).or(user.username.clone()).unwrap_or_default();
        let t = totp(&secret, &self.cfg.messages.product_name, &account)?;
        let uri = t.to_url().map_err(|e| Error::Internal(format!("totp: {e}")))?;
        let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Error::Internal(format!("qr: {e}")))?;
        let svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build();
        let factor = TotpFactor {
            secret: self.data_key.seal(&sealing_context(user_id), &secret),
            enabled: false,
            last_step: 0,
            created_at: now(),
        };
        self.db(move |s| {
            s.write(|tx| {
                let mut u = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                if u.has_totp() {
                    return Err(Error::MfaAlreadyEnabled);
                }
                u.totp = Some(factor);
                tx.update_user(&u)?;
                Ok(())
            })
        })
        .await?;
        Ok(TotpEnrolment { secret: t.secret().to_base32(), otpauth_uri: uri, qr_svg: svg })
    }

    /// Finishes enrolment with a first code; returns the recovery codes, shown only now.
    pub async fn confirm_totp(&self, ctx: &AuthContext, code: &str) -> Result<Vec<String>> {
        self.confirm_totp_for(ctx.user_id, code, Some(ctx.session_id)).await
    }

    async fn confirm_totp_for(&self, user_id: Uuid, code: &str, session: Option<Uuid>) -> Result<Vec<String>> {
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let id = recovery_id(user_id);
        let hashes: Vec<Vec<u8>> = codes.iter().map(|c| self.data_key.code_hash(&id, &normalize_recovery(c))).collect();
        let key = self.data_key.clone();
        let issuer = self.cfg.messages.product_name.clone();
        let factor = SecondFactor::Totp(code.to_owned());
        let ev =
            self.audit_event("user.mfa_enabled", true, Some(user_id), session, serde_json::json!({"factor": "totp"}));
        let outcome = self
            .db(move |s| {
                s.write(|tx| {
                    let mut u = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    match &u.totp {
                        None => return Ok(Err(Error::MfaNotEnabled)),
                        Some(f) if f.enabled => return Ok(Err(Error::MfaAlreadyEnabled)),
                        Some(_) => {}
                    }
                    if !check_factor(&key, &mut u, &factor, &issuer)? {
                        return Ok(Err(Error::InvalidMfaCode));
                    }
                    if let Some(f) = u.totp.as_mut() {
                        f.enabled = true;
                    }
                    u.recovery_codes = hashes;
                    u.updated_at = now();
                    tx.update_user(&u)?;
                    tx.append_audit(&ev)?;
                    Ok(Ok(()))
                })
            })
            .await?;
        outcome?;
        Ok(codes)
    }

    /// Removes the caller's TOTP: needs the password and a current code (or a recovery code).
    pub async fn disable_totp(
        &self,
        ctx: &AuthContext,
        password: &str,
        factor: SecondFactor,
        ip: Option<std::net::IpAddr>,
    ) -> Result<()> {
        let user_id = ctx.user_id;
        let attempt = self
            .throttle
            .reserve(&account_key(user_id), ip.map(|ip| self.ip_key(ip)))
            .await
            .map_err(|wait| Error::TooManyAttempts(wait.as_secs().saturating_add(1)))?;
        let user = self.get_user(user_id).await?;
        if !user.has_totp() {
            return Err(Error::MfaNotEnabled);
        }
        let ok = match user.password_hash.as_deref() {
            Some(phc) if password.len() <= self.policy.max_bytes() => self.hasher.verify(password, phc).await?.ok,
            _ => false,
        };
        if !ok {
            let _ = attempt.failed().await;
            return Err(Error::WrongCurrentPassword);
        }
        let key = self.data_key.clone();
        let issuer = self.cfg.messages.product_name.clone();
        let ev =
            self.audit_event("user.mfa_disabled", true, Some(user_id), Some(ctx.session_id), serde_json::Value::Null);
        let outcome = self
            .db(move |s| {
                s.write(|tx| {
                    let mut u = tx.user(user_id)?.ok_or(Error::NotFound("user"))?;
                    if !check_factor(&key, &mut u, &factor, &issuer)? {
                        return Ok(Err(Error::InvalidMfaCode));
                    }
                    u.totp = None;
                    u.recovery_codes.clear();
                    u.updated_at = now();
                    tx.update_user(&u)?;
                    tx.append_audit(&ev)?;
                    Ok(Ok(()))
                })
            })
            .await?;
        match outcome {
            Ok(()) => {
                attempt.succeeded().await;
                Ok(())
            }
            Err(e) => {
                let _ = attempt.failed().await;
                Err(e)
            }
        }
    }

    /// Enrolment with the token of a login that may only enrol (a role requires a factor).
    pub async fn begin_totp_enrolment(&self, mfa_token: &str) -> Result<TotpEnrolment> {
        let pending = self.enrolment_secret(mfa_token).await?;
        let user = self.get_user(pending.user_id).await?;
        if user.totp.as_ref().is_some_and(|f| !f.enabled) {
            // Restarting enrolment replaces the unconfirmed secret.
            let id = user.id;
            self.db(move |s| {
                s.write(|tx| {
                    let mut u = tx.user(id)?.ok_or(Error::NotFound("user"))?;
                    if !u.has_totp() {
                        u.totp = None;
                        tx.update_user(&u)?;
                    }
                    Ok(())
                })
            })
            .await?;
        }
        self.begin_totp_for(pending.user_id).await
    }

    /// Finishes an enrolment-only login: the factor is on, the login completes, and the
    /// recovery codes come back beside the tokens.
    pub async fn confirm_totp_enrolment(
        &self,
        mfa_token: &str,
        code: &str,
        client: ClientInfo,
    ) -> Result<(TokenPair, Vec<String>)> {
        let pending = self.enrolment_secret(mfa_token).await?;
        let codes = self.confirm_totp_for(pending.user_id, code, None).await?;
        let key = self.data_key.clone();
        let presented = Presented::Token(mfa_token.to_owned());
        self.db(move |s| s.write(|tx| spend_secret(tx, &key, Purpose::MfaEnrol, &presented)))
            .await?
            .map_err(|_| Error::InvalidMfaToken)?;
        let user = self.get_user(pending.user_id).await?;
        let mut amr = pending.amr.clone();
        amr.push("otp".into());
        let method = pending.method.clone().unwrap_or_else(|| "password".into());
        let pair = self.start_session(user, amr, &method, None, pending.target, client).await?;
        Ok((pair, codes))
    }

    async fn enrolment_secret(&self, mfa_token: &str) -> Result<OneTimeSecret> {
        let hash = crate::security::random::token_hash(mfa_token);
        let pending = self.db(move |s| s.read(|tx| Ok(tx.one_time_by_token(&hash)?))).await?;
        pending.filter(|p| p.purpose == Purpose::MfaEnrol && p.expires_at > now()).ok_or(Error::InvalidMfaToken)
    }

    /// The operator's reset: the user's factors and recovery codes go (needs `users:write`, and
    /// every permission the user has).
    pub async fn reset_mfa(&self, by: &Principal, who: &str) -> Result<User> {
        let authority = self.authority(by, "users:write")?;
        let who = who.to_owned();
        let ev = self.audit_event("user.mfa_reset", true, None, None, serde_json::Value::Null);
        self.db(move |s| {
            s.write(|tx| {
                let mut u = super::find_account(&**tx, &who)?;
                authority.may_change(&u.roles)?;
                u.totp = None;
                u.recovery_codes.clear();
                u.updated_at = now();
                tx.update_user(&u)?;
                tx.append_audit(&AuditEvent { subject: Some(u.id), ..ev })?;
                Ok(u)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_appendix_b_vectors_for_sha1() {
        // The RFC's SHA-1 seed is the ASCII string "12345678901234567890"; 8-digit codes.
        let t = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_step_duration(30)
            .with_secret(b"12345678901234567890".to_vec())
            .build()
            .unwrap();
        for (time, code) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert!(t.check(code, time).is_some(), "{time}");
        }
    }

    #[test]
    fn recovery_codes_read_well_and_normalize() {
        let c = recovery_code();
        assert_eq!(c.len(), 9);
        assert_eq!(normalize_recovery(&c.to_uppercase()), c.replace('-', ""));
    }
}
