//! A bounded map whose entries expire: moka behind the few calls services make.

use std::{hash::Hash, time::Duration};

/// Entries live at most `ttl`; the oldest go first when the bound is reached.
#[derive(Clone)]
pub struct Expiring<K, V> {
    inner: moka::sync::Cache<K, V>,
    /// Serialises claims: under load, moka's entry API let two racing claims of one key both
    /// see it fresh.
    claims: std::sync::Arc<std::sync::Mutex<()>>,
}

impl<K, V> Expiring<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `max_entries` entries, each for at most `ttl`.
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        Self::of(moka::sync::Cache::builder().max_capacity(max_entries).time_to_live(ttl).build())
    }

    fn of(inner: moka::sync::Cache<K, V>) -> Self {
        Self { inner, claims: std::sync::Arc::default() }
    }

    /// Bounded by the sum of `weight` over the entries (say, bytes) rather than their number;
    /// an entry unused for `idle` goes early.
    pub fn weighed(max_weight: u64, weight: fn(&K, &V) -> u32, ttl: Duration, idle: Duration) -> Self {
        let inner =
            moka::sync::Cache::builder().max_capacity(max_weight).weigher(weight).time_to_live(ttl).time_to_idle(idle);
        Self::of(inner.build())
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.inner.get(key)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.inner.contains_key(key)
    }

    pub fn insert(&self, key: K, value: V) {
        self.inner.insert(key, value);
    }

    /// Inserts `key` unless it is there: true when this call inserted it, atomically, so that
    /// of two racing claims exactly one wins.
    pub fn claim(&self, key: K, value: V) -> bool {
        let _one_at_a_time = self.claims.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.inner.contains_key(&key) {
            return false;
        }
        self.inner.insert(key, value);
        true
    }

    pub fn remove(&self, key: &K) {
        self.inner.invalidate(key);
    }

    pub fn clear(&self) {
        self.inner.invalidate_all();
    }

    /// Entries held now, after dropping those past their time.
    pub fn len(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops what is past its time. moka evicts only while a cache is used, so without this an
    /// idle server would hold what its last burst left.
    pub fn sweep(&self) {
        self.inner.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[test]
    fn of_racing_claims_of_one_key_exactly_one_wins() {
        let map: Expiring<u32, ()> = Expiring::new(1_000_000, Duration::from_secs(60));
        let wins: Arc<Vec<AtomicUsize>> = Arc::new((0..2_000).map(|_| AtomicUsize::new(0)).collect());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (map, wins) = (map.clone(), Arc::clone(&wins));
                std::thread::spawn(move || {
                    for key in 0..2_000u32 {
                        if map.claim(key, ()) {
                            wins[key as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(wins.iter().all(|w| w.load(Ordering::Relaxed) == 1));
    }
}
