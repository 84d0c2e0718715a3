//! A real SMTP server on loopback for the tests: EHLO, STARTTLS or implicit TLS with a
//! certificate made here, AUTH PLAIN, MAIL/RCPT/DATA. Messages are parsed with
//! mail-parser, so tests read links and codes from what was really sent.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, rustls};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SinkTls {
    None,
    Starttls,
    Implicit,
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Whether it arrived over TLS, and after which AUTH (user name).
    pub tls: bool,
    pub auth: Option<String>,
}

impl Mail {
    /// The link in the text part that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let start = self.text.find(prefix).unwrap_or_else(|| panic!("no {prefix} link in: {}", self.text));
        self.text[start..].split_whitespace().next().unwrap().to_owned()
    }

    /// The `token` parameter of the link starting with `prefix`.
    pub fn token(&self, prefix: &str) -> String {
        let link = url::Url::parse(&self.link(prefix)).unwrap();
        link.query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned()
    }

    /// The first run of six digits in the text.
    pub fn code(&self) -> String {
        let re = regex::Regex::new(r"\b[0-9]{6}\b").unwrap();
        re.find(&self.text).unwrap_or_else(|| panic!("no code in: {}", self.text)).as_str().to_owned()
    }
}

#[derive(Clone)]
pub struct MailSink {
    pub port: u16,
    /// The certificate (PEM) to trust when TLS is on.
    pub cert_pem: String,
    inbox: Arc<Mutex<Vec<Mail>>>,
}

struct Setup {
    tls: SinkTls,
    acceptor: TlsAcceptor,
    credentials: Option<(String, String)>,
}

impl MailSink {
    pub async fn start() -> Self {
        Self::start_with(SinkTls::None, None).await
    }

    pub async fn start_with(tls: SinkTls, credentials: Option<(&str, &str)>) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let setup = Arc::new(Setup {
            tls,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let sink = Self { port, cert_pem: certified.cert.pem(), inbox: inbox.clone() };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (setup, inbox) = (setup.clone(), inbox.clone());
                tokio::spawn(async move {
                    let _ = session(stream, setup, inbox).await;
                });
            }
        });
        sink
    }

    /// Points a configuration's mail at this sink.
    pub fn configure(&self, cfg: &mut authd::config::Config) {
        cfg.email.transport = authd::config::EmailTransport::Smtp;
        cfg.email.from = "Example <no-reply@example.com>".into();
        cfg.email.smtp.host = "localhost".into();
        cfg.email.smtp.port = self.port;
        cfg.email.smtp.tls = authd::config::SmtpTls::None;
    }

    /// Waits (up to 10 s) for the `n`th mail (1-based) to `to`.
    pub async fn nth_to(&self, to: &str, n: usize) -> Mail {
        for _ in 0..200 {
            let found: Vec<Mail> =
                self.inbox.lock().unwrap().iter().filter(|m| m.to.iter().any(|t| t == to)).cloned().collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no mail #{n} to {to}; inbox: {:?}",
            self.inbox.lock().unwrap().iter().map(|m| (&m.to, &m.subject)).collect::<Vec<_>>()
        );
    }

    pub async fn first_to(&self, to: &str) -> Mail {
        self.nth_to(to, 1).await
    }

    pub fn count_to(&self, to: &str) -> usize {
        self.inbox.lock().unwrap().iter().filter(|m| m.to.iter().any(|t| t == to)).count()
    }
}

async fn session(stream: TcpStream, setup: Arc<Setup>, inbox: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    if setup.tls == SinkTls::Implicit {
        let tls = setup.acceptor.accept(stream).await?;
        converse(tls, &setup, &inbox, true).await?;
        return Ok(());
    }
    if let Some(plain) = converse(stream, &setup, &inbox, false).await? {
        let tls = setup.acceptor.accept(plain).await?;
        converse(tls, &setup, &inbox, true).await?;
    }
    Ok(())
}

/// Speaks SMTP until QUIT; hands the stream back when the client asks for STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    setup: &Setup,
    inbox: &Mutex<Vec<Mail>>,
    tls: bool,
) -> std::io::Result<Option<S>> {
    let mut s = BufReader::new(stream);
    if !tls || setup.tls == SinkTls::Implicit {
        s.write_all(b"220 sink.test ESMTP\r\n").await?;
    }
    let (mut to, mut auth) = (Vec::new(), None::<String>);
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let mut reply = String::from("250-sink.test\r\n");
            if setup.tls == SinkTls::Starttls && !tls {
                reply.push_str("250-STARTTLS\r\n");
            }
            if setup.credentials.is_some() {
                reply.push_str("250-AUTH PLAIN\r\n");
            }
            reply.push_str("250 8BITMIME\r\n");
            s.write_all(reply.as_bytes()).await?;
        } else if upper == "STARTTLS" && setup.tls == SinkTls::Starttls && !tls {
            s.write_all(b"220 go ahead\r\n").await?;
            return Ok(Some(s.into_inner()));
        } else if upper.starts_with("AUTH PLAIN") {
            let payload = match cmd.split_whitespace().nth(2) {
                Some(p) => p.to_owned(),
                None => {
                    s.write_all(b"334 \r\n").await?;
                    let mut l = String::new();
                    s.read_line(&mut l).await?;
                    l.trim().to_owned()
                }
            };
            let decoded = B64.decode(payload).unwrap_or_default();
            let parts: Vec<String> =
                decoded.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
            let ok =
                setup.credentials.as_ref().is_some_and(|(u, p)| parts.len() == 3 && &parts[1] == u && &parts[2] == p);
            if ok {
                auth = Some(parts[1].clone());
                s.write_all(b"235 ok\r\n").await?;
            } else {
                s.write_all(b"535 bad credentials\r\n").await?;
            }
        } else if upper.starts_with("MAIL FROM") {
            if setup.credentials.is_some() && auth.is_none() {
                s.write_all(b"530 authenticate first\r\n").await?;
                continue;
            }
            to.clear();
            s.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("RCPT TO") {
            let addr = cmd[8..].trim().trim_start_matches(':').trim().trim_matches(['<', '>']).to_owned();
            to.push(addr);
            s.write_all(b"250 ok\r\n").await?;
        } else if upper == "DATA" {
            s.write_all(b"354 go on\r\n").await?;
            let mut raw = Vec::new();
            loop {
                let mut l = String::new();
                if s.read_line(&mut l).await? == 0 {
                    return Ok(None);
                }
                if l == ".\r\n" {
                    break;
                }
                let l = l.strip_prefix('.').map(str::to_owned).unwrap_or(l);
                raw.extend_from_slice(l.as_bytes());
            }
            let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
            inbox.lock().unwrap().push(Mail {
                to: std::mem::take(&mut to),
                subject: parsed.subject().unwrap_or_default().to_owned(),
                text: parsed.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                html: parsed.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
                tls,
                auth: auth.clone(),
            });
            s.write_all(b"250 queued\r\n").await?;
        } else if upper == "QUIT" {
            s.write_all(b"221 bye\r\n").await?;
            return Ok(None);
        } else if upper == "RSET" || upper == "NOOP" {
            s.write_all(b"250 ok\r\n").await?;
        } else {
            s.write_all(b"502 not implemented\r\n").await?;
        }
    }
}
