//! What `/metrics` exposes (Prometheus text, via prometheus-client): requests by route template
//! and status with latency histograms, login outcomes, rate-limit refusals, the token cache,
//! argon2's queue, group-commit batches, and gauges read at scrape time (caches, outbox).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The documented route (`/v1/me/sessions/:id`), never the concrete path.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `webhook`, `email` or `sms`.
    pub channel: String,
    /// `delivered`, `retry` (failed, tried again later) or `failed` (given up).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// Every metric this process keeps.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub logins: Family<OutcomeLabels, Counter>,
    pub rate_limited: Family<RouteLabels, Counter>,
    pub rate_limit_fallbacks: Counter,
    pub rate_limit_entries: Gauge,
    pub verified_tokens: Gauge,
    pub revocations: Family<KindLabels, Gauge>,
    pub outbox_pending: Family<KindLabels, Gauge>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub commit_batches: Histogram,
    pub token_cache_hits: Counter,
    pub token_cache_misses: Counter,
    pub argon2_queue: Gauge,
    pub argon2_memory: Gauge,
    pub argon2_waits: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("authd");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.25 ms to about 4 s.
            Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
        });
        let logins = Family::<OutcomeLabels, Counter>::default();
        let rate_limited = Family::<RouteLabels, Counter>::default();
        let rate_limit_fallbacks = Counter::default();
        let rate_limit_entries = Gauge::default();
        let verified_tokens = Gauge::default();
        let revocations = Family::<KindLabels, Gauge>::default();
        let outbox_pending = Family::<KindLabels, Gauge>::default();
        let commit_batches = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let token_cache_hits = Counter::default();
        let token_cache_misses = Counter::default();
        let argon2_queue = Gauge::default();
        let argon2_memory = Gauge::default();
        // 0.1 ms to about 3 s.
        let argon2_waits = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register("http_requests", "HTTP requests by route template, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer, by route template", latency.clone());
        registry.register("logins", "Login attempts by outcome", logins.clone());
        registry.register("rate_limited", "Requests refused by a rate limit, by route class", rate_limited.clone());
        registry.register(
            "rate_limit_fallbacks",
            "Rate-limit checks this node answered alone because the shared cache did not answer",
            rate_limit_fallbacks.clone(),
        );
        registry.register("rate_limit_entries", "Rate-limit buckets held in memory", rate_limit_entries.clone());
        registry.register(
            "verified_token_cache_entries",
            "Access tokens whose signature verified, remembered to spare the next check",
            verified_tokens.clone(),
        );
        registry.register("revocations", "Revocations mirrored in memory, by kind", revocations.clone());
        registry.register("outbox_pending", "Outbox entries waiting for delivery, by channel", outbox_pending.clone());
        registry.register(
            "deliveries",
            "Outbox delivery attempts by channel and outcome (delivered, retry, failed)",
            deliveries.clone(),
        );
        registry.register(
            "store_commit_batch_size",
            "Write transactions made durable by one sync (group commit on the embedded store)",
            commit_batches.clone(),
        );
        registry.register(
            "verified_token_cache_hits",
            "Token checks answered from the cache of verified tokens",
            token_cache_hits.clone(),
        );
        registry.register(
            "verified_token_cache_misses",
            "Token checks that verified a signature (not in the cache)",
            token_cache_misses.clone(),
        );
        registry.register("argon2_queue_depth", "Password checks waiting for a hashing thread", argon2_queue.clone());
        registry.register(
            "argon2_memory_bytes",
            "argon2 working memory the hashing threads hold now",
            argon2_memory.clone(),
        );
        registry.register(
            "argon2_queue_wait_seconds",
            "How long password checks waited for a hashing thread",
            argon2_waits.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            logins,
            rate_limited,
            rate_limit_fallbacks,
            rate_limit_entries,
            verified_tokens,
            revocations,
            outbox_pending,
            deliveries,
            commit_batches,
            token_cache_hits,
            token_cache_misses,
            argon2_queue,
            argon2_memory,
            argon2_waits,
        }
    }

    pub fn login(&self, outcome: &str) {
        self.logins.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// A gauge's value from a count.
pub fn as_gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
