//! Webhook endpoints added at run time, and the durable delivery outbox.

use redb::ReadableTable as _;
use uuid::Uuid;

use super::{
    Write, all,
    codec::{decode, encode},
    for_both, get,
    tables::*,
};
use crate::{
    model::{DeliveryState, OutboxMessage, StoredWebhook},
    store::ports::{R, WebhookReads, WebhookWrites},
};

for_both! {
    impl WebhookReads {
        fn stored_webhooks(&self) -> R<Vec<StoredWebhook>> {
            all(&self.tx.open_table(WEBHOOKS)?)
        }

        fn due_deliveries(&self, now_ms: u64, limit: usize) -> R<Vec<OutboxMessage>> {
            let pending = self.tx.open_table(WEBHOOK_PENDING)?;
            let outbox = self.tx.open_table(WEBHOOK_OUTBOX)?;
            let mut out = Vec::new();
            for row in pending.iter()? {
                let (id, next) = row?;
                if next.value() <= now_ms
                    && let Some(d) = get::<Uuid, OutboxMessage>(&outbox, id.value())?
                {
                    out.push(d);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        }

        fn deliveries(&self) -> R<Vec<OutboxMessage>> {
            all(&self.tx.open_table(WEBHOOK_OUTBOX)?)
        }
    }
}

impl WebhookWrites for Write {
    fn put_webhook(&mut self, w: &StoredWebhook) -> R<()> {
        self.tx.open_table(WEBHOOKS)?.insert(w.id, encode(w)?.as_slice())?;
        Ok(())
    }

    fn delete_webhook(&mut self, id: Uuid) -> R<bool> {
        Ok(self.tx.open_table(WEBHOOKS)?.remove(id)?.is_some())
    }

    fn put_delivery(&mut self, d: &OutboxMessage) -> R<()> {
        self.tx.open_table(WEBHOOK_OUTBOX)?.insert(d.id, encode(d)?.as_slice())?;
        let mut pending = self.tx.open_table(WEBHOOK_PENDING)?;
        if d.state == DeliveryState::Pending {
            pending.insert(d.id, d.next_attempt_ms)?;
        } else {
            pending.remove(d.id)?;
        }
        Ok(())
    }

    fn prune_deliveries(&mut self, before_ms: u64) -> R<usize> {
        let mut removed = 0;
        self.tx.open_table(WEBHOOK_OUTBOX)?.retain(|_, v| {
            let keep = decode::<OutboxMessage>(v)
                .is_ok_and(|d| d.state == DeliveryState::Pending || d.created_ms >= before_ms);
            removed += usize::from(!keep);
            keep
        })?;
        Ok(removed)
    }
}
