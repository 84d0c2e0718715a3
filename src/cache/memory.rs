//! Buckets in this process: a bounded moka cache. Evicting a bucket only makes the limit more
//! lenient for that key, so a size cap is safe and keeps memory flat however many clients come.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::sync::Cache;

use super::{Buckets, Take, TakeFuture};

pub struct MemoryBuckets {
    buckets: Cache<String, Arc<AtomicU64>>,
    epoch: Instant,
}

impl MemoryBuckets {
    pub fn new(max_entries: u64, idle: Duration) -> Self {
        Self {
            buckets: Cache::builder().max_capacity(max_entries).time_to_idle(idle.max(Duration::from_secs(1))).build(),
            epoch: Instant::now(),
        }
    }

    /// Drops idle buckets now rather than at the next use.
    pub fn sweep(&self) {
        self.buckets.run_pending_tasks();
    }

    /// Approximate number of buckets held.
    pub fn entry_count(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.buckets.entry_count()
    }

    pub fn take_now(&self, key: &str, interval: Duration, tolerance: Duration) -> Take {
        let interval = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1);
        let tolerance = u64::try_from(tolerance.as_nanos()).unwrap_or(u64::MAX);
        let tat = self.buckets.get_with_by_ref(key, || Arc::new(AtomicU64::new(0)));
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let next = current.max(now).saturating_add(interval);
            if next - now > tolerance {
                return Take {
                    allowed: false,
                    until_full: Duration::from_nanos(current.saturating_sub(now)),
                    wait: Duration::from_nanos(next - now - tolerance),
                };
            }
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return Take { allowed: true, until_full: Duration::from_nanos(next - now), wait: Duration::ZERO };
                }
                Err(actual) => current = actual,
            }
        }
    }
}

impl Buckets for MemoryBuckets {
    fn take<'a>(&'a self, key: &'a str, interval: Duration, tolerance: Duration) -> TakeFuture<'a> {
        let t = self.take_now(key, interval, tolerance);
        Box::pin(async move { Ok(t) })
    }
}
