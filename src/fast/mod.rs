//! Fast state several nodes may share: rate-limit buckets. A port with two backends, this
//! process's memory (moka) and Redis; the rate limiter never names either.

mod memory;
mod redis;

use std::{future::Future, pin::Pin, time::Duration};

pub use memory::MemoryBuckets;
pub use redis::RedisBuckets;

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
