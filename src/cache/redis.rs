//! Redis, shared by every node: rate-limit buckets (one atomic Lua step per request, on Redis's
//! clock so that nodes with skewed clocks agree; keys expire once their bucket is full again)
//! and failed-login counts (`INCR` with an expiry, and a slow-down key that expires with it).

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use redis::{Client, Script, aio::ConnectionManager};

use super::{Buckets, FailureCounts, Failures, Fut, Replay, Stash, Take, TakeFuture, Unavailable};

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

pub struct Redis {
    client: Client,
    conn: Arc<RwLock<Option<ConnectionManager>>>,
    script: Script,
    timeout: Duration,
}

impl Redis {
    /// Connects, waiting up to a second; if Redis does not answer by then, keeps trying in the
    /// background, and until it answers every call reports it unavailable.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, Unavailable> {
        let client = Client::open(url).map_err(|e| Unavailable(format!("cache.url: {e}")))?;
        let redis = Self { client, conn: Arc::new(RwLock::new(None)), script: Script::new(GCRA), timeout };
        let first = ConnectionManager::new_with_config(redis.client.clone(), redis.manager_config());
        match tokio::time::timeout(Duration::from_secs(1), first).await {
            Ok(Ok(c)) => {
                if let Ok(mut s) = redis.conn.write() {
                    *s = Some(c);
                }
            }
            _ => redis.reconnect(),
        }
        Ok(redis)
    }

    fn manager_config(&self) -> redis::aio::ConnectionManagerConfig {
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(self.timeout))
    }

    fn reconnect(&self) {
        let client = self.client.clone();
        let slot = Arc::clone(&self.conn);
        let config = self.manager_config();
        tokio::spawn(async move {
            loop {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
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

impl Redis {
    fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        self.conn.read().ok().and_then(|c| c.clone()).ok_or_else(|| Unavailable("not connected yet".into()))
    }

    /// Runs a command with the configured timeout.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Pipeline) -> Result<T, Unavailable> {
        let mut conn = self.connection()?;
        tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| Unavailable("timed out".into()))?
            .map_err(|e| Unavailable(e.to_string()))
    }
}

fn count_key(key: &str) -> String {
    format!("bf:n:{key}")
}

fn block_key(key: &str) -> String {
    format!("bf:b:{key}")
}

impl FailureCounts for Redis {
    fn read<'a>(&'a self, account: &'a str, ip: Option<&'a str>) -> Fut<'a, Failures> {
        Box::pin(async move {
            let ip = ip.map(count_key).unwrap_or_else(|| "bf:none".into());
            let mut p = redis::pipe();
            p.get(count_key(account)).get(ip).pttl(block_key(account));
            let (account, ip, ttl): (Option<u32>, Option<u32>, i64) = self.run(p).await?;
            let blocked = u64::try_from(ttl).ok().filter(|ms| *ms > 0).map(Duration::from_millis);
            Ok(Failures { account: account.unwrap_or(0), ip: ip.unwrap_or(0), blocked })
        })
    }

    fn fail<'a>(&'a self, account: &'a str, ip: Option<&'a str>, forget: Duration) -> Fut<'a, u32> {
        Box::pin(async move {
            let ms = i64::try_from(forget.as_millis()).unwrap_or(i64::MAX).max(1);
            let mut p = redis::pipe();
            p.atomic().incr(count_key(account), 1).pexpire(count_key(account), ms).ignore();
            if let Some(ip) = ip {
                p.incr(count_key(ip), 1).ignore().pexpire(count_key(ip), ms).ignore();
            }
            let (count,): (u32,) = self.run(p).await?;
            Ok(count)
        })
    }

    fn block<'a>(&'a self, account: &'a str, delay: Duration) -> Fut<'a, ()> {
        Box::pin(async move {
            let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut p = redis::pipe();
            p.pset_ex(block_key(account), 1, ms).ignore();
            self.run::<()>(p).await
        })
    }

    fn clear<'a>(&'a self, account: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut p = redis::pipe();
            p.del(count_key(account)).ignore().del(block_key(account)).ignore();
            self.run::<()>(p).await
        })
    }
}

impl Replay for Redis {
    fn claim<'a>(&'a self, key: &'a str, ttl: Duration) -> Fut<'a, bool> {
        Box::pin(async move {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut p = redis::pipe();
            p.cmd("SET").arg(format!("once:{key}")).arg(1).arg("NX").arg("PX").arg(ms);
            let (set,): (Option<String>,) = self.run(p).await?;
            Ok(set.is_some())
        })
    }
}

impl Stash for Redis {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> Fut<'a, ()> {
        Box::pin(async move {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut p = redis::pipe();
            p.cmd("SET").arg(format!("stash:{key}")).arg(value).arg("PX").arg(ms).ignore();
            self.run::<()>(p).await
        })
    }

    fn take<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut p = redis::pipe();
            p.cmd("GETDEL").arg(format!("stash:{key}"));
            let (value,): (Option<Vec<u8>>,) = self.run(p).await?;
            Ok(value)
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Buckets for Redis {
    fn take<'a>(&'a self, key: &'a str, interval: Duration, tolerance: Duration) -> TakeFuture<'a> {
        Box::pin(async move {
            let mut conn = self.connection()?;
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
