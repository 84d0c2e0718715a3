//! Optional OpenTelemetry traces over OTLP/HTTP (`telemetry.otlp_endpoint`): a span per request
//! and one per storage transaction inside it. Their spans have a target of their own, so with no
//! collector configured no layer wants them and they cost nothing.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};

/// The target of the spans sent to the collector.
pub const TARGET: &str = "authd::otel";

/// The exporter; [`Telemetry::shutdown`] sends what is still queued.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Starts a batching exporter to `endpoint` (the collector's base URL).
    pub fn start(endpoint: &str) -> anyhow::Result<Self> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        // The exporter's HTTP client blocks: made off the async runtime, on a thread of its own.
        let exporter = std::thread::spawn(move || {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .with_timeout(std::time::Duration::from_secs(5))
                .build()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("telemetry.otlp_endpoint: the exporter could not be made"))??;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("authd").build())
            .build();
        Ok(Self { provider })
    }

    /// The tracing layer that turns spans of [`TARGET`] into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("authd"))
            .with_filter(tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::TRACE))
    }

    /// Sends the spans still queued; on a thread of its own, as the exporter blocks.
    pub fn shutdown(self) {
        let provider = self.provider;
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}
