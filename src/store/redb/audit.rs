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
    store::ports::{AuditQuery, AuditReads, AuditWrites, R, event_families},
};

for_both! {
    impl AuditReads {
        fn audit_events(
            &self,
            q: &AuditQuery<'_>,
            limit: usize,
            keep: &dyn Fn(&AuditEvent) -> bool,
        ) -> R<Vec<AuditEvent>> {
            let table = self.tx.open_table(AUDIT)?;
            let mut out = Vec::new();
            if limit == 0 {
                return Ok(out);
            }
            let (low, high) = q.id_range();
            let mut take = |id: Uuid| -> R<bool> {
                if let Some(g) = table.get(id)? {
                    let e: AuditEvent = decode(g.value())?;
                    if keep(&e) {
                        out.push(e);
                    }
                }
                Ok(out.len() < limit)
            };
            if let Some(subject) = q.subject {
                let index = self.tx.open_table(AUDIT_BY_SUBJECT)?;
                for row in index.range((subject, low)..(subject, high))?.rev() {
                    if !take(row?.0.value().1)? {
                        break;
                    }
                }
            } else if let Some(event) = q.event {
                let index = self.tx.open_table(AUDIT_BY_EVENT)?;
                for row in index.range((event, low)..(event, high))?.rev() {
                    if !take(row?.0.value().1)? {
                        break;
                    }
                }
            } else {
                for row in table.range(low..high)?.rev() {
                    let (_, v) = row?;
                    let e: AuditEvent = decode(v.value())?;
                    if keep(&e) {
                        out.push(e);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
            }
            Ok(out)
        }

        fn audit_ids(&self, event: &str, since_ms: u64, limit: usize) -> R<Vec<Uuid>> {
            let q = AuditQuery { subject: None, event: Some(event), since_ms: Some(since_ms), until_ms: None, before: None };
            let (low, high) = q.id_range();
            let index = self.tx.open_table(AUDIT_BY_EVENT)?;
            let mut out = Vec::new();
            for row in index.range((event, low)..(event, high))?.rev() {
                if out.len() >= limit {
                    break;
                }
                out.push(row?.0.value().1);
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
        let mut by_event = self.tx.open_table(AUDIT_BY_EVENT)?;
        for family in event_families(&e.event) {
            by_event.insert((family, e.id), ())?;
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
                    Ok(e) => gone.push((k.value(), e.subject, e.event)),
                    Err(_) => gone.push((k.value(), None, String::new())),
                }
            }
        }
        let mut t = self.tx.open_table(AUDIT)?;
        let mut index = self.tx.open_table(AUDIT_BY_SUBJECT)?;
        let mut by_event = self.tx.open_table(AUDIT_BY_EVENT)?;
        for (id, subject, event) in &gone {
            t.remove(*id)?;
            if let Some(s) = subject {
                index.remove((*s, *id))?;
            }
            for family in event_families(event) {
                by_event.remove((family, *id))?;
            }
        }
        Ok(gone.len())
    }
}

/// Indexes every stored event by its name and families (a file written before that index).
pub(super) fn build_event_index(tx: &redb::WriteTransaction) -> R<()> {
    let events = tx.open_table(AUDIT)?;
    let mut index = tx.open_table(AUDIT_BY_EVENT)?;
    for row in events.iter()? {
        let (k, v) = row?;
        if let Ok(e) = decode::<AuditEvent>(v.value()) {
            for family in event_families(&e.event) {
                index.insert((family, k.value()), ())?;
            }
        }
    }
    Ok(())
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
