//! Rate limits: GCRA (a token bucket kept as one "theoretical arrival time" per key), in this
//! process's bounded memory or in shared state (`crate::cache`).

use std::{
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::{
    cache::{Buckets, MemoryBuckets},
    config::Limit,
};

/// The key of a client address: IPv4 as it is, IPv6 cut to its first `v6_prefix` bits, since
/// one subscriber commonly holds a whole /64 and could otherwise walk around every limit.
pub fn ip_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, v6_prefix.min(128)).map(|n| IpAddr::V6(n.network())).unwrap_or(ip),
        IpAddr::V4(_) => ip,
    }
}

pub use crate::config::RouteClass;

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

/// GCRA rate limits: bursts up to `burst` pass, the sustained rate is capped at `rate/per`.
/// Buckets live in shared state when configured (every node counts together), else in memory.
/// When the shared state does not answer, this node counts on its own, and says so.
pub struct RateLimiter {
    local: MemoryBuckets,
    shared: Option<std::sync::Arc<dyn Buckets>>,
    /// Checks answered locally because the shared state did not.
    fallbacks: AtomicU64,
}

impl RateLimiter {
    pub fn new(max_entries: u64, idle: Duration) -> Self {
        Self { local: MemoryBuckets::new(max_entries, idle), shared: None, fallbacks: AtomicU64::new(0) }
    }

    /// Counts in `shared` (e.g. Redis) rather than in this process.
    pub fn shared(mut self, shared: std::sync::Arc<dyn Buckets>) -> Self {
        self.shared = Some(shared);
        self
    }

    pub async fn check_ip(&self, class: RouteClass, ip: IpAddr, limit: &Limit) -> Option<Decision> {
        self.check(&format!("rl:{}:ip:{ip}", class.as_str()), limit).await
    }

    pub async fn check_account(&self, class: RouteClass, account: &str, limit: &Limit) -> Option<Decision> {
        self.check(&format!("rl:{}:acct:{account}", class.as_str()), limit).await
    }

    /// Drops idle buckets held in memory.
    pub fn sweep(&self) {
        self.local.sweep();
    }

    /// Approximate number of buckets held in memory.
    pub fn entry_count(&self) -> u64 {
        self.local.entry_count()
    }

    /// How many checks this node answered alone because the shared state did not.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    async fn check(&self, key: &str, limit: &Limit) -> Option<Decision> {
        if limit.is_off() {
            return None;
        }
        let interval = (limit.per.0 / limit.rate.max(1)).max(Duration::from_nanos(1));
        let tolerance = interval.saturating_mul(limit.burst);
        let take = match &self.shared {
            Some(shared) => match shared.take(key, interval, tolerance).await {
                Ok(t) => t,
                Err(e) => {
                    // A warning per hundred, not per request, while the outage lasts.
                    if self.fallbacks.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                        tracing::warn!(error = %e, "rate limits fall back to this node's own counts");
                    }
                    self.local.take_now(key, interval, tolerance)
                }
            },
            None => self.local.take_now(key, interval, tolerance),
        };
        let secs = |d: Duration| u64::try_from(d.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX);
        Some(if take.allowed {
            let left = tolerance.saturating_sub(take.until_full).as_nanos() / interval.as_nanos().max(1);
            Decision {
                allowed: true,
                limit: limit.burst,
                remaining: u32::try_from(left).unwrap_or(u32::MAX),
                reset_secs: secs(take.until_full),
                retry_after_secs: 0,
            }
        } else {
            Decision {
                allowed: false,
                limit: limit.burst,
                remaining: 0,
                reset_secs: secs(take.until_full),
                retry_after_secs: secs(take.wait).max(1),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bursts_pass_then_the_rate_is_capped() {
        let rl = RateLimiter::new(100, Duration::from_secs(60));
        let limit = Limit::new(60, 60, 5);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut allowed = 0;
        for _ in 0..8 {
            allowed += usize::from(rl.check_ip(RouteClass::Login, ip, &limit).await.unwrap().allowed);
        }
        assert_eq!(allowed, 5);
        let denied = rl.check_ip(RouteClass::Login, ip, &limit).await.unwrap();
        assert!(!denied.allowed && denied.retry_after_secs >= 1);
        // Other keys and classes are separate.
        assert!(rl.check_ip(RouteClass::Register, ip, &limit).await.unwrap().allowed);
        assert!(rl.check_ip(RouteClass::Login, "192.0.2.2".parse().unwrap(), &limit).await.unwrap().allowed);
        assert!(rl.check_ip(RouteClass::Login, ip, &Limit::off()).await.is_none());
    }

    #[tokio::test]
    async fn tokens_come_back_at_the_configured_rate() {
        let rl = RateLimiter::new(100, Duration::from_secs(60));
        let limit = Limit::new(20, 1, 1);
        assert!(rl.check_account(RouteClass::Login, "a", &limit).await.unwrap().allowed);
        assert!(!rl.check_account(RouteClass::Login, "a", &limit).await.unwrap().allowed);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(rl.check_account(RouteClass::Login, "a", &limit).await.unwrap().allowed);
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

    #[tokio::test]
    async fn memory_stays_bounded_under_a_flood_of_keys() {
        let rl = RateLimiter::new(1000, Duration::from_secs(60));
        let limit = Limit::new(10, 60, 10);
        for i in 0..20_000u32 {
            rl.check_ip(RouteClass::General, IpAddr::from(i.to_be_bytes()), &limit).await;
        }
        assert!(rl.entry_count() <= 1000, "{}", rl.entry_count());
    }
}
