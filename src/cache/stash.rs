//! The stash of one process: a bounded moka cache whose entries live at most `max_ttl`. A
//! value's own expiry travels inside it; the cache's only bounds memory.

use std::{sync::Arc, time::Duration};

use moka::sync::Cache;

use super::{Fut, Stash};

pub struct MemoryStash {
    values: Cache<String, Arc<Vec<u8>>>,
}

impl MemoryStash {
    pub fn new(max_entries: u64, max_ttl: Duration) -> Self {
        Self { values: Cache::builder().max_capacity(max_entries).time_to_live(max_ttl).build() }
    }
}

impl Stash for MemoryStash {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, _ttl: Duration) -> Fut<'a, ()> {
        self.values.insert(key.to_owned(), Arc::new(value));
        Box::pin(async { Ok(()) })
    }

    fn take<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Vec<u8>>> {
        let value = self.values.remove(key).map(Arc::unwrap_or_clone);
        Box::pin(async move { Ok(value) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_is_taken_once() {
        let stash = MemoryStash::new(10, Duration::from_secs(60));
        stash.put("k", b"v".to_vec(), Duration::from_secs(60)).await.unwrap();
        assert_eq!(stash.take("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(stash.take("k").await.unwrap(), None);
    }
}
