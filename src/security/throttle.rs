//! Brute-force defence: failed logins per account (and per client address) slow the account
//! down with a doubling delay, and past a threshold require a solved challenge. Never a
//! permanent lock: once the delay has passed the owner's correct password works again.
//!
//! An attempt is reserved before its password is hashed and settled after, so concurrent
//! guesses count as they start: ten parallel wrong passwords get no more hashing than ten in a
//! row. An attempt that finds every free slot held by attempts in flight waits (a while) for
//! one to settle rather than being refused, so that parallel correct logins all get in. Account
//! keys name the account when it exists and the normalised login name when it does not (the
//! caller's choice), so every spelling of one account shares one budget and unknown names
//! behave alike. Success clears the key's failures but never the address's: a sprayer cannot
//! wash its address clean by signing into an account of its own.

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::sync::Cache;
use tokio::sync::{Notify, futures::OwnedNotified};

use crate::{cache::FailureCounts, config::BruteForceConfig};

#[derive(Default)]
struct Failures {
    count: u32,
    /// Attempts reserved and not yet settled.
    in_flight: u32,
    blocked_until: Option<Instant>,
    /// Taken out of its cache: whoever finds it there must look again.
    retired: bool,
}

impl Failures {
    /// Nothing to remember: no failure, no delay, no attempt in progress.
    fn is_clean(&self) -> bool {
        self.count == 0 && self.in_flight == 0 && self.blocked_until.is_none()
    }
}

/// One key's failures, and the attempts waiting for one in flight to settle.
#[derive(Default)]
struct Slot {
    failures: Mutex<Failures>,
    settled: Arc<Notify>,
}

type Counter = Arc<Slot>;

fn lock(c: &Counter) -> MutexGuard<'_, Failures> {
    c.failures.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why an attempt may not start now.
enum Refusal {
    /// The key is slowed down for this long.
    Wait(Duration),
    /// Attempts in flight hold every free slot.
    Busy,
}

/// A refused reservation: wait this long, or until an attempt in flight settles.
enum Refused {
    Wait(Duration),
    Busy(OwnedNotified),
}

/// A counter in its cache, so that it can leave once it has nothing to remember: every
/// successful login of a new account would otherwise stay for `forget_after`.
struct Entry<K: std::hash::Hash + Eq + Send + Sync + 'static> {
    cache: Cache<K, Counter>,
    key: K,
    counter: Counter,
}

impl<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Entry<K> {
    /// Starts an attempt on `key`'s counter; `check` sees the counts first and may refuse.
    fn reserve(
        cache: &Cache<K, Counter>,
        key: K,
        check: impl FnOnce(&Failures) -> Result<(), Refusal>,
    ) -> Result<Self, Refused> {
        loop {
            let counter = cache.get_with(key.clone(), Default::default);
            let mut f = lock(&counter);
            if f.retired {
                // Removed while we waited for its lock; its successor is in the cache.
                continue;
            }
            match check(&f) {
                Ok(()) => {}
                Err(Refusal::Wait(d)) => return Err(Refused::Wait(d)),
                // Made under the lock, so that no settling in between goes unseen.
                Err(Refusal::Busy) => return Err(Refused::Busy(Arc::clone(&counter.settled).notified_owned())),
            }
            f.in_flight += 1;
            drop(f);
            return Ok(Self { cache: cache.clone(), key, counter });
        }
    }

    fn lock(&self) -> MutexGuard<'_, Failures> {
        lock(&self.counter)
    }

    /// Ends one attempt with `settle`, and leaves the cache if nothing is left to remember.
    fn settle(&self, settle: impl FnOnce(&mut Failures)) {
        let mut f = self.lock();
        f.in_flight = f.in_flight.saturating_sub(1);
        settle(&mut f);
        if f.is_clean() && !f.retired {
            f.retired = true;
            // Under the lock, so that no attempt counts on a counter that is gone.
            self.cache.invalidate(&self.key);
        }
        drop(f);
        self.counter.settled.notify_waiters();
    }
}

pub struct Throttle {
    accounts: Cache<Arc<str>, Counter>,
    ips: Cache<IpAddr, Counter>,
    cfg: BruteForceConfig,
    /// Counts every node shares (Redis), beside this node's own.
    shared: Option<Arc<dyn FailureCounts>>,
    /// Attempts judged on this node's counts alone because the shared ones did not answer.
    fallbacks: AtomicU64,
    /// Longest wait for an attempt in flight to settle before refusing.
    patience: Duration,
}

/// Where a reservation's failure is also counted.
struct SharedRef {
    counts: Arc<dyn FailureCounts>,
    account: String,
    ip: Option<String>,
}

/// One attempt in progress. Settle it with [`Reservation::failed`] or
/// [`Reservation::succeeded`]; dropped unsettled (the attempt never reached the password check),
/// it counts for nothing.
pub struct Reservation {
    account: Entry<Arc<str>>,
    ip: Option<Entry<IpAddr>>,
    challenge_required: bool,
    settled: bool,
    cfg: BruteForceConfig,
    shared: Option<SharedRef>,
}

impl Throttle {
    pub fn new(cfg: &BruteForceConfig) -> Self {
        Self {
            accounts: Cache::builder().max_capacity(cfg.max_entries).time_to_idle(cfg.forget_after.0).build(),
            ips: Cache::builder().max_capacity(cfg.max_entries).time_to_idle(cfg.forget_after.0).build(),
            cfg: cfg.clone(),
            shared: None,
            fallbacks: AtomicU64::new(0),
            patience: Duration::ZERO,
        }
    }

    /// Waits up to `patience` for a free slot when attempts in flight hold them all, rather
    /// than refusing at once.
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Drops the counts of accounts and addresses that went quiet.
    pub fn sweep(&self) {
        self.accounts.run_pending_tasks();
        self.ips.run_pending_tasks();
    }

    /// Also counts failures in `shared`, so that every node sees them.
    pub fn shared(mut self, shared: Arc<dyn FailureCounts>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Attempts judged on this node's counts alone because the shared ones did not answer.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Reserves an attempt on `account` from `ip`, or says how long to wait. Once the free
    /// failures are used up (counting attempts still in flight), only one attempt at a time is
    /// let through, and only after the delay; an attempt finding the slots held waits for one
    /// (up to `patience`). With shared counts, other nodes' failures count too.
    pub async fn reserve(&self, account: &str, ip: Option<IpAddr>) -> Result<Reservation, Duration> {
        let deadline = tokio::time::Instant::now() + self.patience;
        loop {
            let settled = match self.try_reserve(account, ip).await {
                Ok(r) => return Ok(r),
                Err(Refused::Wait(wait)) => return Err(wait),
                Err(Refused::Busy(settled)) => settled,
            };
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return Err(self.cfg.base_delay.0);
            }
        }
    }

    async fn try_reserve(&self, account: &str, ip: Option<IpAddr>) -> Result<Reservation, Refused> {
        let Some(shared) = &self.shared else { return self.reserve_here(account, ip, None) };
        let ip_text = ip.map(|i| i.to_string());
        match shared.read(account, ip_text.as_deref()).await {
            Ok(f) => {
                if let Some(wait) = f.blocked {
                    return Err(Refused::Wait(wait));
                }
                let mut r = self.reserve_here(account, ip, Some(f))?;
                r.shared = Some(SharedRef { counts: Arc::clone(shared), account: account.to_owned(), ip: ip_text });
                Ok(r)
            }
            Err(e) => {
                if self.fallbacks.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                    tracing::warn!(error = %e, "failed-login counts fall back to this node's own");
                }
                self.reserve_here(account, ip, None)
            }
        }
    }

    /// Reserves on this node's counts, and on `shared` ones (every node's failures) if read.
    fn reserve_here(
        &self,
        account: &str,
        ip: Option<IpAddr>,
        shared: Option<crate::cache::Failures>,
    ) -> Result<Reservation, Refused> {
        let now = Instant::now();
        let mut challenge_required = false;
        let account = Entry::reserve(&self.accounts, Arc::from(account), |f| {
            if let Some(until) = f.blocked_until.filter(|u| *u > now) {
                return Err(Refusal::Wait(until - now));
            }
            let everywhere = shared.map_or(f.count, |s| s.account);
            let pending = f.count.max(everywhere).saturating_add(f.in_flight);
            if f.in_flight > 0 && pending >= self.cfg.free_failures {
                return Err(Refusal::Busy);
            }
            challenge_required =
                pending >= self.cfg.challenge_after || shared.is_some_and(|s| s.ip >= self.cfg.challenge_after);
            Ok(())
        })?;
        let ip = ip.map(|ip| {
            Entry::reserve(&self.ips, ip, |f| {
                challenge_required |= f.count.saturating_add(f.in_flight) >= self.cfg.challenge_after;
                Ok(())
            })
        });
        let ip = ip.and_then(Result::ok);
        Ok(Reservation { account, ip, challenge_required, settled: false, cfg: self.cfg.clone(), shared: None })
    }
}

impl Reservation {
    /// Must this attempt carry a solved challenge?
    pub fn challenge_required(&self) -> bool {
        self.challenge_required
    }

    /// The password was wrong; returns the delay now imposed on the account, if any.
    pub async fn failed(mut self) -> Option<Duration> {
        let here = self.failed_here();
        let Some(s) = self.shared.take() else { return here };
        let Ok(count) = s.counts.fail(&s.account, s.ip.as_deref(), self.cfg.forget_after.0).await else {
            return here;
        };
        let shared = self.delay_after(count);
        if let Some(d) = shared {
            let _ = s.counts.block(&s.account, d).await;
        }
        here.max(shared)
    }

    /// The password was right: the account starts over; the address keeps its failures.
    pub async fn succeeded(mut self) {
        self.succeeded_here();
        if let Some(s) = self.shared.take() {
            let _ = s.counts.clear(&s.account).await;
        }
    }

    /// The slow-down after `count` failures: none within the free ones, then doubling, capped.
    fn delay_after(&self, count: u32) -> Option<Duration> {
        let over = count.checked_sub(self.cfg.free_failures)?;
        Some(self.cfg.base_delay.0.saturating_mul(1u32 << over.min(20)).min(self.cfg.max_delay.0))
    }

    fn failed_here(&mut self) -> Option<Duration> {
        self.settled = true;
        if let Some(ip) = &self.ip {
            ip.settle(|f| f.count = f.count.saturating_add(1));
        }
        let mut delay = None;
        self.account.settle(|f| {
            f.count = f.count.saturating_add(1);
            delay = self.delay_after(f.count);
            if let Some(d) = delay {
                f.blocked_until = Some(Instant::now() + d);
            }
        });
        delay
    }

    fn succeeded_here(&mut self) {
        self.settled = true;
        self.release_ip();
        self.account.settle(|f| {
            f.count = 0;
            f.blocked_until = None;
        });
    }

    fn release_ip(&self) {
        if let Some(ip) = &self.ip {
            ip.settle(|_| {});
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.release_ip();
            self.account.settle(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn cfg() -> BruteForceConfig {
        BruteForceConfig {
            free_failures: 2,
            base_delay: HumanDuration(Duration::from_millis(50)),
            max_delay: HumanDuration(Duration::from_millis(150)),
            challenge_after: 4,
            ..BruteForceConfig::default()
        }
    }

    #[tokio::test]
    async fn delays_grow_are_capped_and_release() {
        let t = Throttle::new(&cfg());
        let ip = Some("198.51.100.7".parse().unwrap());
        assert_eq!(t.reserve("a", ip).await.unwrap().failed().await, None);
        assert_eq!(t.reserve("a", ip).await.unwrap().failed().await, Some(Duration::from_millis(50)));
        assert!(t.reserve("a", ip).await.is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(t.reserve("a", ip).await.unwrap().failed().await, Some(Duration::from_millis(100)));
        tokio::time::sleep(Duration::from_millis(110)).await;
        assert_eq!(t.reserve("a", ip).await.unwrap().failed().await, Some(Duration::from_millis(150)));
        tokio::time::sleep(Duration::from_millis(160)).await;
        assert_eq!(t.reserve("a", ip).await.unwrap().failed().await, Some(Duration::from_millis(150)), "capped");
        tokio::time::sleep(Duration::from_millis(160)).await;
        assert!(t.reserve("a", ip).await.unwrap().challenge_required());
        // Another account from another address is untouched; the address alone triggers the
        // challenge for other accounts too.
        assert!(!t.reserve("b", Some("198.51.100.8".parse().unwrap())).await.unwrap().challenge_required());
        assert!(t.reserve("b", ip).await.unwrap().challenge_required());
        t.reserve("a", ip).await.unwrap().succeeded().await;
        assert!(t.reserve("a", None).await.is_ok_and(|r| !r.challenge_required()));
        assert!(t.reserve("c", ip).await.unwrap().challenge_required(), "success keeps the address's failures");
    }

    #[tokio::test]
    async fn only_failures_are_remembered() {
        let t = Throttle::new(&cfg());
        let ip = Some("198.51.100.9".parse().unwrap());
        for i in 0..100 {
            t.reserve(&format!("user{i}"), ip).await.unwrap().succeeded().await;
        }
        drop(t.reserve("never-checked", ip).await.unwrap());
        assert_eq!(t.reserve("bad", ip).await.unwrap().failed().await, None);
        let held = t.reserve("busy", None).await.unwrap();
        t.sweep();
        assert_eq!(t.accounts.entry_count(), 2, "only the failed and the busy account stay");
        assert_eq!(t.ips.entry_count(), 1, "the address keeps its failure");
        assert_eq!(t.reserve("bad", ip).await.unwrap().failed().await, Some(Duration::from_millis(50)));
        held.succeeded().await;
        t.sweep();
        assert_eq!(t.accounts.entry_count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accounts_leaving_the_cache_under_contention_stay_consistent() {
        let t = Arc::new(Throttle::new(&BruteForceConfig { free_failures: 1_000_000, ..cfg() }));
        let tasks: Vec<_> = (0..4)
            .map(|n| {
                let t = Arc::clone(&t);
                tokio::spawn(async move {
                    for _ in 0..500 {
                        let r = t.reserve("shared", None).await.unwrap();
                        if n == 0 {
                            r.failed().await;
                        } else {
                            r.succeeded().await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // Whatever the interleaving, nothing is in flight and the entry is there exactly when
        // it still holds failures.
        t.sweep();
        if let Some(c) = t.accounts.get("shared") {
            let f = lock(&c);
            assert!(f.in_flight == 0 && f.count > 0 && !f.retired);
        }
        assert!(t.reserve("shared", None).await.is_ok());
    }

    #[tokio::test]
    async fn parallel_attempts_are_counted_as_they_start() {
        let t = Throttle::new(&cfg());
        let mut held = Vec::new();
        for _ in 0..10 {
            held.extend(t.reserve("a", None).await.ok());
        }
        assert_eq!(held.len(), 2, "only the free failures may be in flight at once");
        drop(held);
        assert!(t.reserve("a", None).await.is_ok(), "unsettled reservations count for nothing");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_patience_an_attempt_waits_for_a_slot_but_not_past_a_delay() {
        let t = Arc::new(Throttle::new(&cfg()).patience(Duration::from_secs(30)));
        let later = |t: &Arc<Throttle>| {
            let t = Arc::clone(t);
            tokio::spawn(async move { t.reserve("a", None).await.map(drop) })
        };
        let (a, b) = (t.reserve("a", None).await.unwrap(), t.reserve("a", None).await.unwrap());
        let waiting = later(&t);
        // Long enough for it to find both slots held.
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.succeeded().await;
        assert!(waiting.await.unwrap().is_ok(), "a settled attempt frees a slot");
        let a = t.reserve("a", None).await.unwrap();
        let waiting = later(&t);
        a.failed().await;
        b.failed().await;
        let refused = waiting.await.unwrap();
        assert!(refused.is_err_and(|d| d <= Duration::from_millis(50)), "the free failures are used up");
    }
}
