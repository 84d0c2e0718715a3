//! Brute-force defence: failed logins per account (and per client address) slow the account
//! down with a doubling delay, and past a threshold require a solved challenge. Never a
//! permanent lock: once the delay has passed the owner's correct password works again.
//!
//! An attempt is reserved before its password is hashed and settled after, so concurrent
//! guesses count as they start: ten parallel wrong passwords get no more hashing than ten in a
//! row. Account keys name the account when it exists and the normalised login name when it does
//! not (the caller's choice), so every spelling of one account shares one budget and unknown
//! names behave alike. Success clears the account's failures but never the address's: a sprayer
//! cannot wash its address clean by signing into an account of its own.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use moka::sync::Cache;

use crate::config::BruteForceConfig;

#[derive(Default)]
struct Failures {
    count: u32,
    /// Attempts reserved and not yet settled.
    in_flight: u32,
    blocked_until: Option<Instant>,
}

type Counter = Arc<Mutex<Failures>>;

fn lock(c: &Counter) -> MutexGuard<'_, Failures> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Throttle {
    accounts: Cache<Arc<str>, Counter>,
    ips: Cache<IpAddr, Counter>,
    cfg: BruteForceConfig,
}

/// One attempt in progress. Settle it with [`Reservation::failed`] or
/// [`Reservation::succeeded`]; dropped unsettled (the attempt never reached the password check),
/// it counts for nothing.
pub struct Reservation {
    account: Counter,
    ip: Option<Counter>,
    challenge_required: bool,
    settled: bool,
    cfg: BruteForceConfig,
}

impl Throttle {
    pub fn new(cfg: &BruteForceConfig) -> Self {
        Self {
            accounts: Cache::builder().max_capacity(cfg.max_entries).time_to_idle(cfg.forget_after.0).build(),
            ips: Cache::builder().max_capacity(cfg.max_entries).time_to_idle(cfg.forget_after.0).build(),
            cfg: cfg.clone(),
        }
    }

    /// Reserves an attempt on `account` from `ip`, or says how long to wait. Once the free
    /// failures are used up (counting attempts still in flight), only one attempt at a time is
    /// let through, and only after the delay.
    pub fn reserve(&self, account: &str, ip: Option<IpAddr>) -> Result<Reservation, Duration> {
        let now = Instant::now();
        let acc = self.accounts.get_with(Arc::from(account), Default::default);
        let mut challenge_required;
        {
            let mut f = lock(&acc);
            if let Some(until) = f.blocked_until.filter(|u| *u > now) {
                return Err(until - now);
            }
            let pending = f.count.saturating_add(f.in_flight);
            if f.in_flight > 0 && pending >= self.cfg.free_failures {
                return Err(self.cfg.base_delay.0);
            }
            challenge_required = pending >= self.cfg.challenge_after;
            f.in_flight += 1;
        }
        let ip = ip.map(|ip| {
            let c = self.ips.get_with(ip, Default::default);
            let mut f = lock(&c);
            challenge_required |= f.count.saturating_add(f.in_flight) >= self.cfg.challenge_after;
            f.in_flight += 1;
            drop(f);
            c
        });
        Ok(Reservation { account: acc, ip, challenge_required, settled: false, cfg: self.cfg.clone() })
    }
}

impl Reservation {
    /// Must this attempt carry a solved challenge?
    pub fn challenge_required(&self) -> bool {
        self.challenge_required
    }

    /// The password was wrong; returns the delay now imposed on the account, if any.
    pub fn failed(mut self) -> Option<Duration> {
        self.settled = true;
        if let Some(ip) = &self.ip {
            let mut f = lock(ip);
            f.in_flight = f.in_flight.saturating_sub(1);
            f.count = f.count.saturating_add(1);
        }
        let mut f = lock(&self.account);
        f.in_flight = f.in_flight.saturating_sub(1);
        f.count = f.count.saturating_add(1);
        let over = f.count.checked_sub(self.cfg.free_failures)?;
        let delay = self.cfg.base_delay.0.saturating_mul(1u32 << over.min(20)).min(self.cfg.max_delay.0);
        f.blocked_until = Some(Instant::now() + delay);
        Some(delay)
    }

    /// The password was right: the account starts over; the address keeps its failures.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.release_ip();
        let mut f = lock(&self.account);
        f.in_flight = f.in_flight.saturating_sub(1);
        f.count = 0;
        f.blocked_until = None;
    }

    fn release_ip(&self) {
        if let Some(ip) = &self.ip {
            let mut f = lock(ip);
            f.in_flight = f.in_flight.saturating_sub(1);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.release_ip();
            let mut f = lock(&self.account);
            f.in_flight = f.in_flight.saturating_sub(1);
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

    #[test]
    fn delays_grow_are_capped_and_release() {
        let t = Throttle::new(&cfg());
        let ip = Some("198.51.100.7".parse().unwrap());
        assert_eq!(t.reserve("a", ip).unwrap().failed(), None);
        assert_eq!(t.reserve("a", ip).unwrap().failed(), Some(Duration::from_millis(50)));
        assert!(t.reserve("a", ip).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.reserve("a", ip).unwrap().failed(), Some(Duration::from_millis(100)));
        std::thread::sleep(Duration::from_millis(110));
        assert_eq!(t.reserve("a", ip).unwrap().failed(), Some(Duration::from_millis(150)));
        std::thread::sleep(Duration::from_millis(160));
        assert_eq!(t.reserve("a", ip).unwrap().failed(), Some(Duration::from_millis(150)), "capped");
        std::thread::sleep(Duration::from_millis(160));
        assert!(t.reserve("a", ip).unwrap().challenge_required());
        // Another account from another address is untouched; the address alone triggers the
        // challenge for other accounts too.
        assert!(!t.reserve("b", Some("198.51.100.8".parse().unwrap())).unwrap().challenge_required());
        assert!(t.reserve("b", ip).unwrap().challenge_required());
        t.reserve("a", ip).unwrap().succeeded();
        assert!(t.reserve("a", None).is_ok_and(|r| !r.challenge_required()));
        assert!(t.reserve("c", ip).unwrap().challenge_required(), "success keeps the address's failures");
    }

    #[test]
    fn parallel_attempts_are_counted_as_they_start() {
        let t = Throttle::new(&cfg());
        let held: Vec<_> = (0..10).filter_map(|_| t.reserve("a", None).ok()).collect();
        assert_eq!(held.len(), 2, "only the free failures may be in flight at once");
        drop(held);
        assert!(t.reserve("a", None).is_ok(), "unsettled reservations count for nothing");
    }
}
