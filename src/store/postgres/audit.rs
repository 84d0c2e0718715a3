//! The audit log, keyed by UUIDv7 so that key order is time order.

use super::{Write, big, count, for_both, to_doc};
use crate::{
    model::AuditEvent,
    store::ports::{AuditQuery, AuditReads, AuditWrites, R, event_families},
};

/// Rows fetched at a time while a filter is applied.
const PAGE: i64 = 500;

for_both! {
    impl AuditReads {
        fn audit_events(
            &self,
            q: &AuditQuery<'_>,
            limit: usize,
            keep: &dyn Fn(&AuditEvent) -> bool,
        ) -> R<Vec<AuditEvent>> {
            let mut out = Vec::new();
            let (low, mut high) = q.id_range();
            while out.len() < limit {
                let page: Vec<AuditEvent> = match (q.subject, q.event) {
                    (Some(s), _) => self.c.docs(
                        "SELECT data FROM audit WHERE subject = $4 AND id >= $1 AND id < $2 \
                         ORDER BY id DESC LIMIT $3",
                        &[&low, &high, &PAGE, &s],
                    )?,
                    (None, Some(e)) => self.c.docs(
                        "SELECT a.data FROM audit_families f JOIN audit a ON a.id = f.id \
                         WHERE f.family = $4 AND f.id >= $1 AND f.id < $2 ORDER BY f.id DESC LIMIT $3",
                        &[&low, &high, &PAGE, &e],
                    )?,
                    (None, None) => self.c.docs(
                        "SELECT data FROM audit WHERE id >= $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                        &[&low, &high, &PAGE],
                    )?,
                };
                let Some(last) = page.last() else { break };
                high = last.id;
                let full = page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
                out.extend(page.into_iter().filter(|e| keep(e)));
                if full {
                    break;
                }
            }
            out.truncate(limit);
            Ok(out)
        }

        fn audit_ids(&self, event: &str, since_ms: u64, limit: usize) -> R<Vec<uuid::Uuid>> {
            let q = AuditQuery { subject: None, event: Some(event), since_ms: Some(since_ms), until_ms: None, before: None };
            let (low, high) = q.id_range();
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = self.c.rows(
                "SELECT id FROM audit_families WHERE family = $1 AND id >= $2 AND id < $3 ORDER BY id DESC LIMIT $4",
                &[&event, &low, &high, &limit],
            )?;
            Ok(rows.iter().map(|r| r.get::<_, uuid::Uuid>(0)).collect())
        }
    }
}

impl AuditWrites for Write {
    fn insert_audit(&mut self, e: &AuditEvent) -> R<()> {
        self.c.execute(
            "INSERT INTO audit (id, time_ms, subject, data) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            &[&e.id, &big(e.time_ms), &e.subject, &to_doc(e)?],
        )?;
        for family in event_families(&e.event) {
            self.c.execute(
                "INSERT INTO audit_families (family, id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&family, &e.id],
            )?;
        }
        Ok(())
    }

    fn prune_audit(&mut self, before_ms: u64) -> R<usize> {
        Ok(count(self.c.execute("DELETE FROM audit WHERE time_ms < $1", &[&big(before_ms)])?))
    }
}
