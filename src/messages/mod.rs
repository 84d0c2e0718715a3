//! What authd sends: to people, email over SMTP and SMS through an HTTP gateway, each from a
//! template per kind and language; to applications, webhooks. The only code that knows lettre
//! and minijinja, and the HTTP client that sends.

mod email;
mod sms;
mod templates;
mod webhook;

pub use email::EmailSender;
pub use sms::SmsSender;
pub use templates::Templates;
pub use webhook::{NOT_DELIVERED, Signed, WebhookSender, deliveries_for};

pub use crate::config::LOCALES;

/// A kind of message, with the channel it goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    VerifyEmail,
    VerifyPhone,
    PasswordReset,
    PasswordResetSms,
    EmailChangeNotice,
    RegistrationAttempt,
    NewDevice,
    IdentityLinked,
    AccountRecovery,
    AccountRecoverySms,
    RecoveryUsed,
    RecoveryUsedSms,
    PasskeyAdded,
}

impl MessageKind {
    pub const ALL: [MessageKind; 13] = [
        MessageKind::VerifyEmail,
        MessageKind::VerifyPhone,
        MessageKind::PasswordReset,
        MessageKind::PasswordResetSms,
        MessageKind::EmailChangeNotice,
        MessageKind::RegistrationAttempt,
        MessageKind::NewDevice,
        MessageKind::IdentityLinked,
        MessageKind::AccountRecovery,
        MessageKind::AccountRecoverySms,
        MessageKind::RecoveryUsed,
        MessageKind::RecoveryUsedSms,
        MessageKind::PasskeyAdded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MessageKind::VerifyEmail => "verify_email",
            MessageKind::VerifyPhone => "verify_phone",
            MessageKind::PasswordReset => "password_reset",
            MessageKind::PasswordResetSms => "password_reset_sms",
            MessageKind::EmailChangeNotice => "email_change_notice",
            MessageKind::RegistrationAttempt => "registration_attempt",
            MessageKind::NewDevice => "new_device",
            MessageKind::IdentityLinked => "identity_linked",
            MessageKind::AccountRecovery => "account_recovery",
            MessageKind::AccountRecoverySms => "account_recovery_sms",
            MessageKind::RecoveryUsed => "recovery_used",
            MessageKind::RecoveryUsedSms => "recovery_used_sms",
            MessageKind::PasskeyAdded => "passkey_added",
        }
    }

    pub fn is_sms(self) -> bool {
        matches!(
            self,
            MessageKind::VerifyPhone
                | MessageKind::PasswordResetSms
                | MessageKind::AccountRecoverySms
                | MessageKind::RecoveryUsedSms
        )
    }

    /// The variables its template may use, beside `product` and `address`.
    fn variables(self) -> &'static [&'static str] {
        match self {
            MessageKind::VerifyEmail
            | MessageKind::PasswordReset
            | MessageKind::AccountRecovery
            | MessageKind::AccountRecoverySms => &["link", "code", "valid_for"],
            MessageKind::VerifyPhone | MessageKind::PasswordResetSms => &["code", "valid_for"],
            MessageKind::RecoveryUsed | MessageKind::RecoveryUsedSms => &["time", "ip"],
            MessageKind::PasskeyAdded => &["name", "time", "ip"],
            MessageKind::EmailChangeNotice => &["new_address"],
            MessageKind::RegistrationAttempt => &["link"],
            MessageKind::NewDevice => &["device", "ip", "time"],
            MessageKind::IdentityLinked => &["provider"],
        }
    }
}

/// A message ready to send. SMS use `text` only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The language of a message: the user's own, else the first shipped one `Accept-Language`
/// names (by quality), else the default.
pub fn pick_locale(user: Option<&str>, accept_language: Option<&str>, default: &str) -> String {
    if let Some(l) = user.filter(|l| LOCALES.contains(l)) {
        return l.to_owned();
    }
    let mut offered: Vec<(f32, &str)> = accept_language
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| {
            let mut bits = part.split(';');
            let tag = bits.next()?.trim();
            let q =
                bits.find_map(|b| b.trim().strip_prefix("q=")).map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            let primary = tag.split('-').next()?;
            LOCALES.iter().find(|l| l.eq_ignore_ascii_case(primary)).map(|l| (q, *l))
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    offered.sort_by(|a, b| b.0.total_cmp(&a.0));
    offered.first().map_or_else(|| default.to_owned(), |(_, l)| (*l).to_owned())
}

/// How long something stays valid, in words of `locale`: "24 hours", "10 минут".
pub fn duration_words(locale: &str, secs: u64) -> String {
    let (n, unit) = if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, 'h')
    } else if secs >= 60 {
        (secs.div_ceil(60), 'm')
    } else {
        (secs, 's')
    };
    if locale == "ru" {
        let forms = match unit {
            'h' => ["час", "часа", "часов"],
            'm' => ["минуту", "минуты", "минут"],
            _ => ["секунду", "секунды", "секунд"],
        };
        let form = match (n % 10, n % 100) {
            (1, r) if r != 11 => forms[0],
            (2..=4, r) if !(12..=14).contains(&r) => forms[1],
            _ => forms[2],
        };
        format!("{n} {form}")
    } else {
        let word = match unit {
            'h' => "hour",
            'm' => "minute",
            _ => "second",
        };
        format!("{n} {word}{}", if n == 1 { "" } else { "s" })
    }
}

/// The senders and templates, built once at start.
pub struct Outbound {
    pub templates: Templates,
    pub email: EmailSender,
    pub sms: SmsSender,
    pub webhooks: WebhookSender,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_follows_the_user_then_the_header_by_quality() {
        assert_eq!(pick_locale(Some("ru"), Some("en"), "en"), "ru");
        assert_eq!(pick_locale(None, Some("de-DE, ru;q=0.8, en;q=0.5"), "en"), "ru");
        assert_eq!(pick_locale(None, Some("en;q=0.2, ru-RU;q=0.9"), "en"), "ru");
        assert_eq!(pick_locale(None, Some("ru;q=0, fr"), "en"), "en");
        assert_eq!(pick_locale(Some("xx"), None, "ru"), "ru");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_words("en", 86400), "24 hours");
        assert_eq!(duration_words("en", 600), "10 minutes");
        assert_eq!(duration_words("en", 3600), "1 hour");
        assert_eq!(duration_words("ru", 86400), "24 часа");
        assert_eq!(duration_words("ru", 1800), "30 минут");
        assert_eq!(duration_words("ru", 60), "1 минуту");
        assert_eq!(duration_words("ru", 11 * 60), "11 минут");
    }
}
