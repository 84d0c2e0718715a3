//! Cross-node coherence: every change other nodes must hear of is a `NOTIFY` in the transaction
//! that makes it (PostgreSQL delivers it on commit, never for a rollback), and each node
//! `LISTEN`s on a connection of its own. After a (re)connect the node resyncs from the tables,
//! so nothing missed while the connection was down stays missed.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{
    AsyncMessage, Socket,
    tls::{MakeTlsConnect, TlsConnect},
};

use super::{Conn, Write};
use crate::{
    model::Revocation,
    store::ports::{Change, ChangeFeed, R},
};

const CHANNEL: &str = "authd_changes";

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    Revoked(Revocation),
    Keys,
    Roles,
    User(uuid::Uuid),
    Client(uuid::Uuid),
}

/// A notice and the process that sent it: a node applies its own changes as it makes them, and
/// must not undo what it did since (a user it cached again) on hearing its own notice late.
#[derive(serde::Serialize, serde::Deserialize)]
struct Notice {
    from: uuid::Uuid,
    change: Message,
}

impl Write {
    pub(super) fn announce(&self, change: &Change) -> R<()> {
        let message = match change {
            Change::Revoked(r) => Message::Revoked(r.clone()),
            Change::Keys => Message::Keys,
            Change::Roles => Message::Roles,
            Change::User(id) => Message::User(*id),
            Change::Client(id) => Message::Client(*id),
            Change::Resync => return Ok(()),
        };
        let payload = serde_json::to_string(&Notice { from: self.origin, change: message }).unwrap_or_default();
        announce(&self.c, &payload)
    }
}

fn announce(c: &Conn, payload: &str) -> R<()> {
    c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).map(|_| ())
}

/// Listens until the receiver goes away, reconnecting after a second when the database does.
pub(super) fn listen<T>(
    config: tokio_postgres::Config,
    tls: T,
    handle: &tokio::runtime::Handle,
    origin: uuid::Uuid,
) -> ChangeFeed
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (tx, rx) = mpsc::channel(1024);
    handle.spawn(async move {
        loop {
            match follow(&config, tls.clone(), &tx, origin).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "lost the database change feed; reconnecting"),
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    rx
}

/// One connection's worth of listening. `Ok` when the receiver is gone.
async fn follow<T>(
    config: &tokio_postgres::Config,
    tls: T,
    tx: &mpsc::Sender<Change>,
    origin: uuid::Uuid,
) -> Result<(), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket> + Send + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (messages_tx, mut messages) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if messages_tx.send(m).is_err() {
                break;
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if tx.send(Change::Resync).await.is_err() {
        driver.abort();
        return Ok(());
    }
    while let Some(m) = messages.recv().await {
        let m = m?;
        let AsyncMessage::Notification(n) = m else { continue };
        let change = match serde_json::from_str::<Notice>(n.payload()) {
            Ok(notice) if notice.from == origin => continue,
            Ok(notice) => match notice.change {
                Message::Revoked(r) => Change::Revoked(r),
                Message::Keys => Change::Keys,
                Message::Roles => Change::Roles,
                Message::User(id) => Change::User(id),
                Message::Client(id) => Change::Client(id),
            },
            Err(_) => Change::Resync,
        };
        if tx.send(change).await.is_err() {
            driver.abort();
            return Ok(());
        }
    }
    driver.abort();
    // The connection ended without an error: treat it as lost.
    client.batch_execute("SELECT 1").await?;
    Ok(())
}
