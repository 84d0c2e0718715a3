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
    store::ports::{AuditQuery, AuditReads, AuditWrites, COUNTED_EVENTS, R, event_families, minute_of},
};

/// A range oldest first (`asc`) or newest first.
fn ordered<'a, I: DoubleEndedIterator + 'a>(range: I, asc: bool) -> Box<dyn Iterator<Item = I::Item> + 'a> {
    if asc { Box::new(range) } else { Box::new(range.rev()) }
}

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
            let asc = q.ascending();
            if let Some(subject) = q.subject {
                let index = self.tx.open_table(AUDIT_BY_SUBJECT)?;
                for row in ordered(index.range((subject, low)..(subject, high))?, asc) {
                    if !take(row?.0.value().1)? {
                        break;
                    }
                }
            } else if let Some(event) = q.event {
                let index = self.tx.open_table(AUDIT_BY_EVENT)?;
                for row in ordered(index.range((event, low)..(event, high))?, asc) {
                    if !take(row?.0.value().1)? {
                        break;
                    }
                }
            } else {
                for row in ordered(table.range(low..high)?, asc) {
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


        fn audit_counts(&self, event: &str, since_ms: u64) -> R<Vec<(u64, u64)>> {
            let table = self.tx.open_table(AUDIT_COUNTS)?;
            let mut out = Vec::new();
            for row in table.range((event, minute_of(since_ms))..=(event, u64::MAX))? {
                let (k, v) = row?;
                out.push((k.value().1, v.value()));
            }
            Ok(out)
        }
    }
}

/// Adds one to `event`'s count for the minute holding `time_ms`.
fn count_event(table: &mut redb::Table<'_, (&'static str, u64), u64>, event: &str, time_ms: u64) -> R<()> {
    let key = (event, minute_of(time_ms));
    let n = table.get(key)?.map_or(0, |g| g.value());
    table.insert(key, n + 1)?;
    Ok(())
}

impl AuditWrites for Write {
    fn insert_audit(&mut self, e: &AuditEvent) -> R<()> {
        if self.tx.open_table(AUDIT)?.insert(e.id, encode(e)?.as_slice())?.is_some() {
            return Ok(());
        }
        if let Some(subject) = e.subject {
            self.tx.open_table(AUDIT_BY_SUBJECT)?.insert((subject, e.id), ())?;
        }
        let mut by_event = self.tx.open_table(AUDIT_BY_EVENT)?;
        for family in event_families(&e.event) {
            by_event.insert((family, e.id), ())?;
        }
        if COUNTED_EVENTS.contains(&e.event.as_str()) {
            count_event(&mut self.tx.open_table(AUDIT_COUNTS)?, &e.event, e.time_ms)?;
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
        // A minute's count goes with the last of its events; the minute the cut falls in stays.
        let mut counts = self.tx.open_table(AUDIT_COUNTS)?;
        for event in COUNTED_EVENTS {
            counts.retain_in((event, 0)..(event, minute_of(before_ms)), |_, _| false)?;
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

/// Counts the stored sign-ins and failures per minute (a file written before the counts).
pub(super) fn build_event_counts(tx: &redb::WriteTransaction) -> R<()> {
    let events = tx.open_table(AUDIT)?;
    let index = tx.open_table(AUDIT_BY_EVENT)?;
    let mut counts = tx.open_table(AUDIT_COUNTS)?;
    counts.retain(|_, _| false)?;
    for event in COUNTED_EVENTS {
        for row in index.range((event, Uuid::nil())..=(event, Uuid::max()))? {
            let id = row?.0.value().1;
            if let Some(g) = events.get(id)?
                && let Ok(e) = decode::<AuditEvent>(g.value())
            {
                count_event(&mut counts, event, e.time_ms)?;
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
