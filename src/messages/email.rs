//! Mail delivery: SMTP (STARTTLS, implicit TLS, or plain to a loopback relay) or the log.

use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};

use super::Rendered;
use crate::config::{EmailConfig, EmailTransport, SmtpTls};

pub enum EmailSender {
    Log { from: Mailbox },
    Smtp { from: Mailbox, transport: AsyncSmtpTransport<Tokio1Executor> },
}

impl EmailSender {
    pub fn new(cfg: &EmailConfig) -> Result<Self, String> {
        let from: Mailbox = cfg.from.parse().map_err(|e| format!("email.from: {e}"))?;
        if cfg.transport == EmailTransport::Log {
            return Ok(EmailSender::Log { from });
        }
        let s = &cfg.smtp;
        let tls = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(s.host.clone());
            if let Some(ca) = &s.tls_ca {
                let pem = std::fs::read(ca).map_err(|e| format!("email.smtp.tls_ca: {e}"))?;
                b = b.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| format!("email.smtp.tls_ca: {e}"))?);
            }
            b.build_rustls().map_err(|e| format!("email.smtp: {e}"))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .timeout(Some(s.timeout.0))
            .tls(match s.tls {
                SmtpTls::Starttls => Tls::Required(tls()?),
                SmtpTls::Implicit => Tls::Wrapper(tls()?),
                SmtpTls::None => Tls::None,
            });
        if let Some(user) = &s.username {
            let password = s.password.as_ref().map(|p| p.0.clone()).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(EmailSender::Smtp { from, transport: builder.build() })
    }

    pub fn is_log(&self) -> bool {
        matches!(self, EmailSender::Log { .. })
    }

    /// Sends one message; the error is for the server's log and the audit trail.
    pub async fn send(&self, to: &str, m: &Rendered) -> Result<(), String> {
        match self {
            EmailSender::Log { .. } => {
                tracing::info!(target: "authd::messages", to, subject = %m.subject, text = %m.text, "email (log transport)");
                Ok(())
            }
            EmailSender::Smtp { from, transport } => {
                let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(m.subject.clone())
                    .multipart(MultiPart::alternative_plain_html(m.text.clone(), m.html.clone()))
                    .map_err(|e| format!("message: {e}"))?;
                transport.send(message).await.map(|_| ()).map_err(|e| format!("smtp: {e}"))
            }
        }
    }
}
