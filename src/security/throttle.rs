//! Brute-force defence: consecutive failed logins per account (and per IP) slow the account
//! down with a doubling delay, and past a threshold require a solved challenge. Never a
//! permanent lock: once the delay has passed the owner's correct password works again.
//!
//! Counters are keyed by the login name as typed (normalised), whether or not such an account
//! exists, so throttling reveals nothing about which accounts exist.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use moka::sync::Cache;

use crate::config::BruteForceConfig;

#[derive(Default)]
struct Failures {
    count: u32,
    blocked_until: Option<Instant>,
}

/// What may happen with the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open { challenge_required: bool },
    Blocked { retry_after: Duration },
}

pub struct Throttle {
    accounts: Cache<Arc<str>, Arc<Mutex<Failures>>>,
    ips: Cache<IpAddr, Arc<Mutex<Failures>>>,
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

    pub fn gate(&self, account: &str, ip: Option<IpAddr>) -> Gate {
        let now = Instant::now();
        let mut challenge = false;
        if let Some(f) = self.accounts.get(account) {
            let f = f.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(until) = f.blocked_until.filter(|u| *u > now) {
                return Gate::Blocked { retry_after: until - now };
            }
            challenge |= f.count >= self.cfg.challenge_after;
        }
        if let Some(f) = ip.and_then(|ip| self.ips.get(&ip)) {
            challenge |= f.lock().unwrap_or_else(|p| p.into_inner()).count >= self.cfg.challenge_after;
        }
        Gate::Open { challenge_required: challenge }
    }

    /// Counts a failure; returns the delay now imposed on the account, if any.
    pub fn record_failure(&self, account: &str, ip: Option<IpAddr>) -> Option<Duration> {
        if let Some(ip) = ip {
            let f = self.ips.get_with(ip, Default::default);
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            f.count = f.count.saturating_add(1);
        }
        let f = self.accounts.get_with(Arc::from(account), Default::default);
        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
        f.count = f.count.saturating_add(1);
        let over = f.count.checked_sub(self.cfg.free_failures)?;
        let delay = self.cfg.base_delay.0.saturating_mul(1u32 << over.min(20)).min(self.cfg.max_delay.0);
        f.blocked_until = Some(Instant::now() + delay);
        Some(delay)
    }

    /// A correct password clears the account's failures and those of the IP it came from.
    pub fn record_success(&self, account: &str, ip: Option<IpAddr>) {
        self.accounts.invalidate(account);
        if let Some(ip) = ip {
            self.ips.invalidate(&ip);
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
        assert_eq!(t.record_failure("a", ip), None);
        assert_eq!(t.record_failure("a", ip), Some(Duration::from_millis(50)));
        assert!(matches!(t.gate("a", ip), Gate::Blocked { .. }));
        assert_eq!(t.record_failure("a", ip), Some(Duration::from_millis(100)));
        assert_eq!(t.record_failure("a", ip), Some(Duration::from_millis(150)));
        assert_eq!(t.record_failure("a", ip), Some(Duration::from_millis(150)), "capped");
        std::thread::sleep(Duration::from_millis(160));
        assert_eq!(t.gate("a", ip), Gate::Open { challenge_required: true });
        // Another account from another IP is untouched.
        assert_eq!(t.gate("b", Some("198.51.100.8".parse().unwrap())), Gate::Open { challenge_required: false });
        // The IP alone triggers the challenge for other accounts too.
        assert_eq!(t.gate("b", ip), Gate::Open { challenge_required: true });
        t.record_success("a", ip);
        assert_eq!(t.gate("a", ip), Gate::Open { challenge_required: false });
    }
}
