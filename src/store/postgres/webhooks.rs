//! Webhook endpoints added at run time, and the durable delivery outbox.

use uuid::Uuid;

use super::{Write, big, count, for_both, to_doc};
use crate::{
    model::{DeliveryState, OutboxMessage, StoredWebhook},
    store::ports::{R, WebhookReads, WebhookWrites},
};

for_both! {
    impl WebhookReads {
        fn stored_webhooks(&self) -> R<Vec<StoredWebhook>> {
            self.c.docs("SELECT data FROM webhooks ORDER BY id", &[])
        }

        fn due_deliveries(&self, now_ms: u64, limit: usize) -> R<Vec<OutboxMessage>> {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            self.c.docs(
                "SELECT data FROM webhook_outbox WHERE pending AND next_attempt_ms <= $1 ORDER BY id LIMIT $2",
                &[&big(now_ms), &limit],
            )
        }

        fn deliveries(&self) -> R<Vec<OutboxMessage>> {
            self.c.docs("SELECT data FROM webhook_outbox ORDER BY id", &[])
        }
    }
}

impl WebhookWrites for Write {
    fn put_webhook(&mut self, w: &StoredWebhook) -> R<()> {
        self.c.execute(
            "INSERT INTO webhooks (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
            &[&w.id, &to_doc(w)?],
        )?;
        Ok(())
    }

    fn delete_webhook(&mut self, id: Uuid) -> R<bool> {
        Ok(self.c.execute("DELETE FROM webhooks WHERE id = $1", &[&id])? > 0)
    }

    fn put_delivery(&mut self, d: &OutboxMessage) -> R<()> {
        self.c.execute(
            "INSERT INTO webhook_outbox (id, pending, next_attempt_ms, created_ms, data) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET pending = EXCLUDED.pending, next_attempt_ms = EXCLUDED.next_attempt_ms, \
             data = EXCLUDED.data",
            &[&d.id, &(d.state == DeliveryState::Pending), &big(d.next_attempt_ms), &big(d.created_ms), &to_doc(d)?],
        )?;
        Ok(())
    }

    fn prune_deliveries(&mut self, before_ms: u64) -> R<usize> {
        Ok(count(
            self.c.execute("DELETE FROM webhook_outbox WHERE NOT pending AND created_ms < $1", &[&big(before_ms)])?,
        ))
    }
}
