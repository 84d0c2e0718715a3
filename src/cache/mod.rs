//! In-process state, the one home for it: revocations checked on every request, caches with
//! expiring entries (verified tokens, users, clients, recent sends), and the fast state several nodes may
//! share (rate-limit buckets, failed-login counts, single-use claims), as ports with a memory
//! (moka) and a Redis backend. Nothing outside this folder names moka or Redis.

mod expiring;
mod memory;
mod records;
mod redis;
mod revocations;
mod stash;

use std::{future::Future, pin::Pin, time::Duration};

pub use expiring::Expiring;
pub use memory::MemoryBuckets;
pub use records::{ClientCache, UserCache};
pub use redis::Redis;
pub use revocations::RevocationCache;
pub use stash::MemoryStash;

/// The answer of one GCRA step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    pub allowed: bool,
    /// How long until the bucket is full again.
    pub until_full: Duration,
    /// Denied: how long until a request would pass.
    pub wait: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("shared state unavailable: {0}")]
pub struct Unavailable(pub String);

pub type TakeFuture<'a> = Pin<Box<dyn Future<Output = Result<Take, Unavailable>> + Send + 'a>>;

/// GCRA buckets (a token bucket kept as one "theoretical arrival time" per key): a request
/// spends `interval`; at most `tolerance` may be spent ahead of time.
pub trait Buckets: Send + Sync {
    fn take<'a>(&'a self, key: &'a str, interval: Duration, tolerance: Duration) -> TakeFuture<'a>;
}

/// Failed logins as every node sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    pub account: u32,
    pub ip: u32,
    /// How long the account is still slowed down.
    pub blocked: Option<Duration>,
}

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, Unavailable>> + Send + 'a>>;

/// Failed-login counts shared by nodes. Keys are forgotten after `forget` without a failure.
pub trait FailureCounts: Send + Sync {
    fn read<'a>(&'a self, account: &'a str, ip: Option<&'a str>) -> Fut<'a, Failures>;
    /// Counts one more failure on the account and the address; returns the account's count.
    fn fail<'a>(&'a self, account: &'a str, ip: Option<&'a str>, forget: Duration) -> Fut<'a, u32>;
    /// Slows the account down for `delay`.
    fn block<'a>(&'a self, account: &'a str, delay: Duration) -> Fut<'a, ()>;
    /// The account starts over (its failures and any slow-down go); the address keeps its own.
    fn clear<'a>(&'a self, account: &'a str) -> Fut<'a, ()>;
}

/// Values read once: put with a lifetime, gone once taken (a ceremony under way), wherever the
/// next request of it lands.
pub trait Stash: Send + Sync {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> Fut<'a, ()>;
    /// The value, removed in the same step: of two takes, one gets it.
    fn take<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Vec<u8>>>;
}

/// Single use across nodes: the first `claim` of a key within `ttl` wins.
pub trait Replay: Send + Sync {
    fn claim<'a>(&'a self, key: &'a str, ttl: Duration) -> Fut<'a, bool>;
}
