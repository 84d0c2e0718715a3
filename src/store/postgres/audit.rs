//! The audit log, keyed by UUIDv7 so that key order is time order.

use super::{Write, big, count, for_both, to_doc};
use crate::{
    model::AuditEvent,
    store::ports::{AuditQuery, AuditReads, AuditWrites, COUNTED_EVENTS, R, event_families, minute_of},
};

/// Most rows fetched at a time while a filter is applied.
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
            let (mut low, mut high) = q.id_range();
            let asc = q.ascending();
            let order = if asc { "ASC" } else { "DESC" };
            // As many rows as are wanted, then twice as many each time the filter left some out.
            let mut page_rows = i64::try_from(limit).unwrap_or(PAGE).clamp(16, PAGE);
            while out.len() < limit {
                let page: Vec<AuditEvent> = match (q.subject, q.event) {
                    (Some(s), _) => self.c.docs(
                        &format!(
                            "SELECT data FROM audit WHERE subject = $4 AND id >= $1 AND id < $2 \
                             ORDER BY id {order} LIMIT $3"
                        ),
                        &[&low, &high, &page_rows, &s],
                    )?,
                    (None, Some(e)) => self.c.docs(
                        &format!(
                            "SELECT a.data FROM audit_families f JOIN audit a ON a.id = f.id \
                             WHERE f.family = $4 AND f.id >= $1 AND f.id < $2 ORDER BY f.id {order} LIMIT $3"
                        ),
                        &[&low, &high, &page_rows, &e],
                    )?,
                    (None, None) => self.c.docs(
                        &format!("SELECT data FROM audit WHERE id >= $1 AND id < $2 ORDER BY id {order} LIMIT $3"),
                        &[&low, &high, &page_rows],
                    )?,
                };
                let Some(last) = page.last() else { break };
                if asc {
                    low = uuid::Uuid::from_u128(last.id.as_u128().saturating_add(1));
                } else {
                    high = last.id;
                }
                let last_page = page.len() < usize::try_from(page_rows).unwrap_or(usize::MAX);
                out.extend(page.into_iter().filter(|e| keep(e)));
                if last_page {
                    break;
                }
                page_rows = (page_rows * 2).min(PAGE);
            }
            out.truncate(limit);
            Ok(out)
        }


        fn audit_counts(&self, event: &str, since_ms: u64) -> R<Vec<(u64, u64)>> {
            let rows = self.c.rows(
                "SELECT minute_ms, sum(n)::bigint FROM audit_counts WHERE event = $1 AND minute_ms >= $2 \
                 GROUP BY minute_ms ORDER BY minute_ms",
                &[&event, &big(minute_of(since_ms))],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    let (h, n) = (r.get::<_, i64>(0), r.get::<_, i64>(1));
                    (u64::try_from(h).unwrap_or(0), u64::try_from(n).unwrap_or(0))
                })
                .collect())
        }
    }
}

impl AuditWrites for Write {
    fn insert_audit(&mut self, e: &AuditEvent) -> R<()> {
        let added = self.c.execute(
            "INSERT INTO audit (id, time_ms, subject, data) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            &[&e.id, &big(e.time_ms), &e.subject, &to_doc(e)?],
        )?;
        if added == 0 {
            return Ok(());
        }
        for family in event_families(&e.event) {
            self.c.execute(
                "INSERT INTO audit_families (family, id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&family, &e.id],
            )?;
        }
        if COUNTED_EVENTS.contains(&e.event.as_str()) {
            self.c.execute(
                "INSERT INTO audit_counts (event, minute_ms, shard, n) VALUES ($1, $2, $3, 1) \
                 ON CONFLICT (event, minute_ms, shard) DO UPDATE SET n = audit_counts.n + 1",
                &[
                    &e.event,
                    &big(minute_of(e.time_ms)),
                    &i16::from(crate::security::random::random_bytes::<1>()[0] % 16),
                ],
            )?;
        }
        Ok(())
    }

    fn prune_audit(&mut self, before_ms: u64) -> R<usize> {
        self.c.execute("DELETE FROM audit_counts WHERE minute_ms < $1", &[&big(minute_of(before_ms))])?;
        Ok(count(self.c.execute("DELETE FROM audit WHERE time_ms < $1", &[&big(before_ms)])?))
    }
}
