//! The audit log, keyed by UUIDv7 so that key order is time order.

use redb::ReadableTable as _;
use uuid::Uuid;

use super::{
    Write,
    codec::{decode, encode},
    for_both,
    tables::*,
};
use crate::{
    model::AuditEvent,
    store::ports::{AuditReads, AuditWrites, R},
};

for_both! {
    impl AuditReads {
        fn audit_events(
            &self,
            before: Option<Uuid>,
            limit: usize,
            keep: &dyn Fn(&AuditEvent) -> bool,
        ) -> R<Vec<AuditEvent>> {
            let table = self.tx.open_table(AUDIT)?;
            let mut out = Vec::new();
            if limit == 0 {
                return Ok(out);
            }
            let rows = match before {
                Some(b) => table.range(..b)?,
                None => table.range::<Uuid>(..)?,
            };
            for row in rows.rev() {
                let (_, v) = row?;
                let e: AuditEvent = decode(v.value())?;
                if keep(&e) {
                    out.push(e);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        }
    }
}

impl AuditWrites for Write {
    fn insert_audit(&mut self, e: &AuditEvent) -> R<()> {
        self.tx.open_table(AUDIT)?.insert(e.id, encode(e)?.as_slice())?;
        Ok(())
    }

    fn prune_audit(&mut self, before_ms: u64) -> R<usize> {
        let mut t = self.tx.open_table(AUDIT)?;
        let mut removed = 0;
        t.retain(|_, v| {
            let keep = decode::<AuditEvent>(v).is_ok_and(|e| e.time_ms >= before_ms);
            removed += usize::from(!keep);
            keep
        })?;
        Ok(removed)
    }
}
