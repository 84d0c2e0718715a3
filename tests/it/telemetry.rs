//! OpenTelemetry traces: `authd serve` with `telemetry.otlp_endpoint` sends a span per request
//! and one per storage transaction inside it to a real OTLP/HTTP receiver (a small one here,
//! decoding the protobuf the collector would).

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::{collector::trace::v1::ExportTraceServiceRequest, trace::v1::Span};
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, binary::Server};

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).map(|v| format!("{:?}", v.value))
}

#[tokio::test]
async fn requests_and_their_storage_transactions_reach_the_collector() {
    let received: Arc<Mutex<Vec<Span>>> = Arc::default();
    let sink = received.clone();
    let receiver = poem::Route::new().at(
        "/v1/traces",
        poem::post(poem::endpoint::make(move |req: poem::Request| {
            let sink = sink.clone();
            async move {
                let mut req = req;
                let body = req.take_body().into_bytes().await.unwrap();
                let export = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for r in export.resource_spans {
                    for s in r.scope_spans {
                        sink.lock().unwrap().extend(s.spans);
                    }
                }
                poem::Response::builder().status(poem::http::StatusCode::OK).finish()
            }
        })),
    );
    let at = crate::support::serve_fake(receiver).await;
    let dir = crate::support::private_dir();
    let endpoint = format!("http://{at}");
    let server = Server::start(dir.path(), &[("AUTHD_TELEMETRY__OTLP_ENDPOINT", endpoint.as_str())]).await;
    let r = reqwest::Client::new()
        .post(server.url("/v1/auth/register"))
        .json(&json!({"email": "traced@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Stopping sends what is still queued.
    let (status, log) = server.stop().await;
    assert!(status.success(), "{}", log.join("\n"));
    let spans = received.lock().unwrap().clone();
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v1/auth/register")
        .unwrap_or_else(|| panic!("no request span among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(attribute(request, "http.response.status_code").as_deref(), Some("Some(IntValue(201))"), "{request:?}");
    let writes: Vec<&Span> =
        spans.iter().filter(|s| s.name == "storage.write" && s.trace_id == request.trace_id).collect();
    assert!(!writes.is_empty(), "the registration's write is in its trace");
    assert!(writes.iter().all(|w| w.parent_span_id == request.span_id), "storage spans hang under the request");
    // Nothing of the log goes to the collector, and nothing of the collector's spans to the log.
    assert!(spans.iter().all(|s| s.name == "storage.read" || s.name == "storage.write" || s.name.contains(' ')));
    assert!(!log.iter().any(|l| l.contains("storage.write")), "{log:?}");
}
