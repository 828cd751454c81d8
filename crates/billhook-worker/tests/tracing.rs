//! One trace from receipt to effects: the worker's span for an event continues the trace the
//! receiver started. Its own test binary: it installs the process-wide subscriber.

use billhook_core::config::{LogFormat, TelemetrySettings};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::worker::run_due_jobs;
use billhook_testkit::{TestReceiver, TestWorker};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

#[tokio::test]
async fn the_worker_span_continues_the_receiver_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let settings = TelemetrySettings {
        log_filter: "info".into(),
        log_format: LogFormat::Text,
        otlp_endpoint: None,
    };
    let guard = billhook_core::telemetry::install("billhook-test", provider.clone(), &settings)
        .expect("telemetry");
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    assert_eq!(app.deliver(&event).await.status(), 200);
    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        1
    );
    worker.stop().await.expect("stop");
    provider.force_flush().expect("flush");

    let spans = exporter.get_finished_spans().expect("spans");
    let trace_of = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.span_context.trace_id())
            .unwrap_or_else(|| {
                panic!(
                    "no `{name}` span among {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            })
    };
    assert_eq!(trace_of("task"), trace_of("webhook"));
    assert_eq!(trace_of("process_event"), trace_of("webhook"));
    drop(guard);
}
