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
            subject: Option<Uuid>,
            before: Option<Uuid>,
            limit: usize,
            keep: &dyn Fn(&AuditEvent) -> bool,
        ) -> R<Vec<AuditEvent>> {
            let table = self.tx.open_table(AUDIT)?;
            let mut out = Vec::new();
            if limit == 0 {
                return Ok(out);
            }
            if let Some(subject) = subject {
                let index = self.tx.open_table(AUDIT_BY_SUBJECT)?;
                let end = before.unwrap_or(Uuid::max());
                for row in index.range((subject, Uuid::nil())..(subject, end))?.rev() {
                    let (k, _) = row?;
                    let (_, id) = k.value();
                    if let Some(g) = table.get(id)? {
                        let e: AuditEvent = decode(g.value())?;
                        if keep(&e) {
                            out.push(e);
                            if out.len() >= limit {
                                break;
                            }
                        }
                    }
                }
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
        if let Some(subject) = e.subject {
            self.tx.open_table(AUDIT_BY_SUBJECT)?.insert((subject, e.id), ())?;
        }
        Ok(())
    }

    fn prune_audit(&mut self, before_ms: u64) -> R<usize> {
        let mut gone = Vec::new();
        {
            let t = self.tx.open_table(AUDIT)?;
            // Keys are time-ordered: stop at the first event young enough to keep.
            for row in t.iter()? {
                let (k, v) = row?;
                match decode::<AuditEvent>(v.value()) {
                    Ok(e) if e.time_ms >= before_ms => break,
                    Ok(e) => gone.push((k.value(), e.subject)),
                    Err(_) => gone.push((k.value(), None)),
                }
            }
        }
        let mut t = self.tx.open_table(AUDIT)?;
        let mut index = self.tx.open_table(AUDIT_BY_SUBJECT)?;
        for (id, subject) in &gone {
            t.remove(*id)?;
            if let Some(s) = subject {
                index.remove((*s, *id))?;
            }
        }
        Ok(gone.len())
    }
}

/// Indexes every stored event by its subject (a file written before the index existed).
pub(super) fn build_subject_index(tx: &redb::WriteTransaction) -> R<()> {
    let events = tx.open_table(AUDIT)?;
    let mut index = tx.open_table(AUDIT_BY_SUBJECT)?;
    for row in events.iter()? {
        let (k, v) = row?;
        if let Ok(e) = decode::<AuditEvent>(v.value())
            && let Some(s) = e.subject
        {
            index.insert((s, k.value()), ())?;
        }
    }
    Ok(())
}
