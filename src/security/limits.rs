//! Rate limits: GCRA (a token bucket kept as one "theoretical arrival time" per key) in a
//! bounded moka cache. Bursts up to `burst` pass, the sustained rate is capped at `rate/per`.
//! Evicting a bucket only makes the limit more lenient for that key, so a size cap is safe here
//! and keeps memory flat however many clients appear.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::sync::Cache;

use crate::config::Limit;

/// The key of a client address: IPv4 as it is, IPv6 cut to its first `v6_prefix` bits, since
/// one subscriber commonly holds a whole /64 and could otherwise walk around every limit.
pub fn ip_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, v6_prefix.min(128)).map(|n| IpAddr::V6(n.network())).unwrap_or(ip),
        IpAddr::V4(_) => ip,
    }
}

/// Which limits a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Login,
    Register,
    Refresh,
    Password,
    General,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Login => "login",
            RouteClass::Register => "register",
            RouteClass::Refresh => "refresh",
            RouteClass::Password => "password",
            RouteClass::General => "general",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Ip(IpAddr),
    Account(Arc<str>),
}

/// The outcome of one check, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until a denied request would pass.
    pub retry_after_secs: u64,
}

pub struct RateLimiter {
    buckets: Cache<(RouteClass, Subject), Arc<AtomicU64>>,
    epoch: Instant,
}

impl RateLimiter {
    pub fn new(max_entries: u64, idle: Duration) -> Self {
        Self {
            buckets: Cache::builder().max_capacity(max_entries).time_to_idle(idle.max(Duration::from_secs(1))).build(),
            epoch: Instant::now(),
        }
    }

    pub fn check_ip(&self, class: RouteClass, ip: IpAddr, limit: &Limit) -> Option<Decision> {
        self.check((class, Subject::Ip(ip)), limit)
    }

    pub fn check_account(&self, class: RouteClass, account: &str, limit: &Limit) -> Option<Decision> {
        self.check((class, Subject::Account(account.into())), limit)
    }

    /// Approximate number of buckets held.
    pub fn entry_count(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.buckets.entry_count()
    }

    fn check(&self, key: (RouteClass, Subject), limit: &Limit) -> Option<Decision> {
        if limit.is_off() {
            return None;
        }
        let interval = u64::try_from(limit.per.0.as_nanos() / u128::from(limit.rate)).unwrap_or(u64::MAX).max(1);
        let tolerance = interval.saturating_mul(u64::from(limit.burst));
        let tat = self.buckets.get_with(key, || Arc::new(AtomicU64::new(0)));
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let secs = |ns: u64| ns.div_ceil(1_000_000_000);
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let next = current.max(now).saturating_add(interval);
            if next - now > tolerance {
                let wait = next - now - tolerance;
                return Some(Decision {
                    allowed: false,
                    limit: limit.burst,
                    remaining: 0,
                    reset_secs: secs(current.saturating_sub(now)),
                    retry_after_secs: secs(wait).max(1),
                });
            }
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let left = (tolerance - (next - now)) / interval;
                    return Some(Decision {
                        allowed: true,
                        limit: limit.burst,
                        remaining: u32::try_from(left).unwrap_or(u32::MAX),
                        reset_secs: secs(next - now),
                        retry_after_secs: 0,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_pass_then_the_rate_is_capped() {
        let rl = RateLimiter::new(100, Duration::from_secs(60));
        let limit = Limit::new(60, 60, 5);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..8).filter(|_| rl.check_ip(RouteClass::Login, ip, &limit).unwrap().allowed).count();
        assert_eq!(allowed, 5);
        let denied = rl.check_ip(RouteClass::Login, ip, &limit).unwrap();
        assert!(!denied.allowed && denied.retry_after_secs >= 1);
        // Other keys and classes are separate.
        assert!(rl.check_ip(RouteClass::Register, ip, &limit).unwrap().allowed);
        assert!(rl.check_ip(RouteClass::Login, "192.0.2.2".parse().unwrap(), &limit).unwrap().allowed);
        assert!(rl.check_ip(RouteClass::Login, ip, &Limit::off()).is_none());
    }

    #[test]
    fn tokens_come_back_at_the_configured_rate() {
        let rl = RateLimiter::new(100, Duration::from_secs(60));
        let limit = Limit::new(20, 1, 1);
        assert!(rl.check_account(RouteClass::Login, "a", &limit).unwrap().allowed);
        assert!(!rl.check_account(RouteClass::Login, "a", &limit).unwrap().allowed);
        std::thread::sleep(Duration::from_millis(60));
        assert!(rl.check_account(RouteClass::Login, "a", &limit).unwrap().allowed);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a, 64), ip_key(b, 64));
        assert_ne!(ip_key(a, 64), ip_key(c, 64));
        assert_eq!(ip_key(a, 48), ip_key(c, 48));
        assert_eq!(ip_key(a, 128), a);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(v4, 64), v4);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let rl = RateLimiter::new(1000, Duration::from_secs(60));
        let limit = Limit::new(10, 60, 10);
        for i in 0..20_000u32 {
            rl.check_ip(RouteClass::General, IpAddr::from(i.to_be_bytes()), &limit);
        }
        assert!(rl.entry_count() <= 1000, "{}", rl.entry_count());
    }
}
