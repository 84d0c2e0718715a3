//! Buckets in Redis, shared by every node: one atomic Lua step per request, on Redis's clock so
//! that nodes with skewed clocks agree. Keys expire once their bucket is full again.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use redis::{Client, Script, aio::ConnectionManager};

use super::{Buckets, Take, TakeFuture, Unavailable};

const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local nxt = math.max(tat, now) + interval
if nxt - now > tolerance then
  return {0, math.max(tat - now, 0), nxt - now - tolerance}
end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1000)
return {1, nxt - now, 0}
";

pub struct RedisBuckets {
    client: Client,
    conn: Arc<RwLock<Option<ConnectionManager>>>,
    script: Script,
    timeout: Duration,
}

impl RedisBuckets {
    /// Connects in the background: until Redis answers, `take` reports it unavailable.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, Unavailable> {
        let client = Client::open(url).map_err(|e| Unavailable(format!("cache.url: {e}")))?;
        let buckets = Self { client, conn: Arc::new(RwLock::new(None)), script: Script::new(GCRA), timeout };
        buckets.reconnect();
        Ok(buckets)
    }

    fn reconnect(&self) {
        let client = self.client.clone();
        let slot = Arc::clone(&self.conn);
        let timeout = self.timeout;
        tokio::spawn(async move {
            loop {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
                    .set_response_timeout(Some(timeout));
                match ConnectionManager::new_with_config(client.clone(), config).await {
                    Ok(c) => {
                        if let Ok(mut s) = slot.write() {
                            *s = Some(c);
                        }
                        tracing::info!("connected to redis");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "redis unreachable; rate limits count per node until it answers");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Buckets for RedisBuckets {
    fn take<'a>(&'a self, key: &'a str, interval: Duration, tolerance: Duration) -> TakeFuture<'a> {
        Box::pin(async move {
            let conn = self.conn.read().ok().and_then(|c| c.clone());
            let Some(mut conn) = conn else {
                return Err(Unavailable("not connected yet".into()));
            };
            let mut invocation = self.script.key(key);
            invocation.arg(micros(interval).max(1)).arg(micros(tolerance));
            let call = invocation.invoke_async(&mut conn);
            let reply: (i64, i64, i64) = tokio::time::timeout(self.timeout, call)
                .await
                .map_err(|_| Unavailable("timed out".into()))?
                .map_err(|e| Unavailable(e.to_string()))?;
            let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
            Ok(Take { allowed: reply.0 == 1, until_full: us(reply.1), wait: us(reply.2) })
        })
    }
}
