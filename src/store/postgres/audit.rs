//! The audit log, keyed by UUIDv7 so that key order is time order.

use uuid::Uuid;

use super::{Write, big, count, for_both, to_doc};
use crate::{
    model::AuditEvent,
    store::ports::{AuditReads, AuditWrites, R},
};

/// Rows fetched at a time while a filter is applied.
const PAGE: i64 = 500;

for_both! {
    impl AuditReads {
        fn audit_events(
            &self,
            subject: Option<Uuid>,
            before: Option<Uuid>,
            limit: usize,
            keep: &dyn Fn(&AuditEvent) -> bool,
        ) -> R<Vec<AuditEvent>> {
            let mut out = Vec::new();
            let mut cursor = before;
            while out.len() < limit {
                let page: Vec<AuditEvent> = match subject {
                    Some(s) => self.c.docs(
                        "SELECT data FROM audit WHERE subject = $3 AND ($1::uuid IS NULL OR id < $1) \
                         ORDER BY id DESC LIMIT $2",
                        &[&cursor, &PAGE, &s],
                    )?,
                    None => self.c.docs(
                        "SELECT data FROM audit WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                        &[&cursor, &PAGE],
                    )?,
                };
                let Some(last) = page.last() else { break };
                cursor = Some(last.id);
                let full = page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
                out.extend(page.into_iter().filter(|e| keep(e)));
                if full {
                    break;
                }
            }
            out.truncate(limit);
            Ok(out)
        }
    }
}

impl AuditWrites for Write {
    fn insert_audit(&mut self, e: &AuditEvent) -> R<()> {
        self.c.execute(
            "INSERT INTO audit (id, time_ms, subject, data) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            &[&e.id, &big(e.time_ms), &e.subject, &to_doc(e)?],
        )?;
        Ok(())
    }

    fn prune_audit(&mut self, before_ms: u64) -> R<usize> {
        Ok(count(self.c.execute("DELETE FROM audit WHERE time_ms < $1", &[&big(before_ms)])?))
    }
}
