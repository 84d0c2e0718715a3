//! Message templates: one minijinja file per kind and language with blocks `subject`, `text`
//! and `html` (SMS: `text`). Shipped ones are built in; `messages.templates_dir` overrides
//! them. Overrides are compiled and rendered once at start, so a broken one stops the server
//! there rather than failing a send; a test does the same for the shipped ones. Kept templates
//! compile at their first send: an idle server holds none of them.

use std::{borrow::Cow, collections::BTreeMap, path::Path, sync::Arc};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use super::{LOCALES, MessageKind, Rendered};

/// Sources shipped with authd, by `<locale>/<kind>`.
const SHIPPED: &[(&str, &str)] = &[
    ("en/verify_email", include_str!("../../templates/en/verify_email.jinja")),
    ("en/verify_phone", include_str!("../../templates/en/verify_phone.jinja")),
    ("en/password_reset", include_str!("../../templates/en/password_reset.jinja")),
    ("en/password_reset_sms", include_str!("../../templates/en/password_reset_sms.jinja")),
    ("en/email_change_notice", include_str!("../../templates/en/email_change_notice.jinja")),
    ("en/registration_attempt", include_str!("../../templates/en/registration_attempt.jinja")),
    ("en/new_device", include_str!("../../templates/en/new_device.jinja")),
    ("en/identity_linked", include_str!("../../templates/en/identity_linked.jinja")),
    ("en/account_recovery", include_str!("../../templates/en/account_recovery.jinja")),
    ("en/account_recovery_sms", include_str!("../../templates/en/account_recovery_sms.jinja")),
    ("en/recovery_used", include_str!("../../templates/en/recovery_used.jinja")),
    ("en/recovery_used_sms", include_str!("../../templates/en/recovery_used_sms.jinja")),
    ("en/passkey_added", include_str!("../../templates/en/passkey_added.jinja")),
    ("ru/verify_email", include_str!("../../templates/ru/verify_email.jinja")),
    ("ru/verify_phone", include_str!("../../templates/ru/verify_phone.jinja")),
    ("ru/password_reset", include_str!("../../templates/ru/password_reset.jinja")),
    ("ru/password_reset_sms", include_str!("../../templates/ru/password_reset_sms.jinja")),
    ("ru/email_change_notice", include_str!("../../templates/ru/email_change_notice.jinja")),
    ("ru/registration_attempt", include_str!("../../templates/ru/registration_attempt.jinja")),
    ("ru/new_device", include_str!("../../templates/ru/new_device.jinja")),
    ("ru/identity_linked", include_str!("../../templates/ru/identity_linked.jinja")),
    ("ru/account_recovery", include_str!("../../templates/ru/account_recovery.jinja")),
    ("ru/account_recovery_sms", include_str!("../../templates/ru/account_recovery_sms.jinja")),
    ("ru/recovery_used", include_str!("../../templates/ru/recovery_used.jinja")),
    ("ru/recovery_used_sms", include_str!("../../templates/ru/recovery_used_sms.jinja")),
    ("ru/passkey_added", include_str!("../../templates/ru/passkey_added.jinja")),
];

/// Every template, compiled twice: plain for the subject and text, HTML-escaping for the html.
pub struct Templates {
    plain: Environment<'static>,
    html: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// Template sources by `<locale>/<kind>`.
type Sources = Arc<BTreeMap<String, Cow<'static, str>>>;

fn env(escape: AutoEscape, sources: Sources) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(move |_| escape.clone());
    env.set_loader(move |name| Ok(sources.get(name).map(|s| s.to_string())));
    env
}

impl Templates {
    /// The shipped templates with the overrides of `dir`; every error names its file.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut sources: BTreeMap<String, Cow<'static, str>> =
            SHIPPED.iter().map(|(name, src)| ((*name).to_owned(), Cow::Borrowed(*src))).collect();
        let mut overridden = false;
        if let Some(dir) = dir {
            for locale in LOCALES {
                let sub = dir.join(locale);
                let Ok(entries) = std::fs::read_dir(&sub) else { continue };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jinja"))
                    else {
                        continue;
                    };
                    if !MessageKind::ALL.iter().any(|k| k.name() == stem) {
                        return Err(format!("{}: no message kind is called `{stem}`", path.display()));
                    }
                    let src =
                        std::fs::read_to_string(&path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
                    sources.insert(format!("{locale}/{stem}"), Cow::Owned(src));
                    overridden = true;
                }
            }
        }
        let sources = Arc::new(sources);
        if overridden {
            // Checking compiles every template: a throwaway set does it.
            Self::with(&sources).check()?;
        }
        Ok(Self::with(&sources))
    }

    fn with(sources: &Sources) -> Self {
        Self { plain: env(AutoEscape::None, sources.clone()), html: env(AutoEscape::Html, sources.clone()) }
    }

    /// Renders every template with sample values: a missing block or an unknown variable is
    /// found now.
    fn check(&self) -> Result<(), String> {
        for locale in LOCALES {
            for kind in MessageKind::ALL {
                let mut vars: BTreeMap<&str, String> = kind.variables().iter().map(|v| (*v, "x".to_owned())).collect();
                vars.insert("product", "authd".into());
                vars.insert("address", "user@example.com".into());
                let r =
                    self.render(kind, locale, &vars).map_err(|e| format!("template {locale}/{}: {e}", kind.name()))?;
                if r.text.trim().is_empty()
                    || (!kind.is_sms() && (r.subject.trim().is_empty() || r.html.trim().is_empty()))
                {
                    let blocks = if kind.is_sms() { "`text`" } else { "`subject`, `text` and `html`" };
                    return Err(format!("template {locale}/{}: needs non-empty blocks {blocks}", kind.name()));
                }
            }
        }
        Ok(())
    }

    pub fn render(&self, kind: MessageKind, locale: &str, vars: &BTreeMap<&str, String>) -> Result<Rendered, String> {
        let name = format!("{locale}/{}", kind.name());
        let block = |env: &Environment<'static>, block: &str| -> Result<String, String> {
            let t = env.get_template(&name).map_err(|e| e.to_string())?;
            let mut captured = t.render_captured(vars).map_err(|e| e.to_string())?;
            captured.with_state_mut(|s| s.render_block(block)).map_err(|e| format!("block `{block}`: {e}"))
        };
        let text = block(&self.plain, "text")?.trim().to_owned();
        if kind.is_sms() {
            return Ok(Rendered { subject: String::new(), text, html: String::new() });
        }
        Ok(Rendered {
            subject: block(&self.plain, "subject")?.trim().replace(['\r', '\n'], " "),
            text,
            html: block(&self.html, "html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("product", "Example".to_owned()),
            ("address", "o'brien&co@example.com".to_owned()),
            ("link", "https://auth.example.com/ui/verify?token=abc".to_owned()),
            ("code", "123456".to_owned()),
            ("valid_for", "24 hours".to_owned()),
        ])
    }

    #[test]
    fn shipped_templates_render_in_every_language() {
        let t = Templates::load(None).unwrap();
        t.check().unwrap();
        let en = t.render(MessageKind::VerifyEmail, "en", &vars()).unwrap();
        assert!(en.subject.contains("Example"));
        assert!(en.text.contains("o'brien&co@example.com") && en.text.contains("123456"));
        assert!(en.html.contains("o&#x27;brien&amp;co@example.com"), "{}", en.html);
        let ru = t.render(MessageKind::VerifyEmail, "ru", &vars()).unwrap();
        assert!(ru.subject.starts_with("Подтвердите"));
    }

    #[test]
    fn an_override_replaces_a_template_and_a_broken_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("en")).unwrap();
        let file = dir.path().join("en/verify_phone.jinja");
        std::fs::write(&file, "{% block text %}Code {{ code }}{% endblock %}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(t.render(MessageKind::VerifyPhone, "en", &vars()).unwrap().text, "Code 123456");

        std::fs::write(&file, "{% block text %}Code {{ cod }}{% endblock %}").unwrap();
        let e = Templates::load(Some(dir.path())).unwrap_err();
        assert!(e.contains("en/verify_phone"), "{e}");
        std::fs::write(&file, "{% block text %}Code {{ code }{% endblock %}").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
        std::fs::remove_file(&file).unwrap();
        std::fs::write(dir.path().join("en/verfy_email.jinja"), "x").unwrap();
        assert!(Templates::load(Some(dir.path())).unwrap_err().contains("verfy_email"));
    }
}
