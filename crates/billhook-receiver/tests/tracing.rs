//! The job carries the request's W3C trace context, so the worker's span can continue the
//! receiver's trace. Its own test binary: it installs the process-wide subscriber.

use billhook_core::config::{LogFormat, TelemetrySettings};
use billhook_testkit::TestReceiver;
use billhook_testkit::fixtures::{self, ApiShape};

#[tokio::test]
async fn the_job_metadata_carries_the_request_trace_context() {
    let provider = billhook_core::telemetry::tracer_provider("billhook-receiver-test", None)
        .expect("provider");
    let _guard = billhook_core::telemetry::install(
        "billhook-receiver-test",
        provider,
        &TelemetrySettings {
            log_filter: "info".into(),
            log_format: LogFormat::Json,
            otlp_endpoint: None,
        },
    )
    .expect("telemetry");
    let app = TestReceiver::spawn().await;
    let event = fixtures::event("customer.created", ApiShape::Acacia).expect("fixture");
    assert_eq!(app.deliver(&event).await.status(), 200);

    let context: Option<String> =
        sqlx::query_scalar("SELECT metadata -> 'apalis_core.tracing.context' FROM apalis.jobs")
            .fetch_one(&app.db.pool)
            .await
            .expect("job row");
    let context = context.expect("a trace context in the job metadata");
    let mut parts = context.split(';');
    let trace_id = parts.next().expect("trace id");
    let span_id = parts.next().expect("span id");
    assert_eq!(trace_id.len(), 32, "{context}");
    assert!(trace_id.bytes().all(|b| b.is_ascii_hexdigit()) && trace_id != "0".repeat(32));
    assert_eq!(span_id.len(), 16, "{context}");
}
