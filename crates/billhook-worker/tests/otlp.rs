//! One trace from receipt to effects, as a trace collector receives it (issue 16; what
//! `docker compose --profile observability up` shows in Jaeger, checked without Docker): the
//! receiver exports its spans over OTLP/HTTP, a real `billhook-worker run` process exports its
//! own to the same collector (set by OTEL_EXPORTER_OTLP_ENDPOINT, as docker-compose.yml does),
//! and the worker's spans for the event are in the receiver's trace, its task span a child of a
//! receiver span. Its own test binary: it installs the process-wide subscriber.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use billhook_core::config::{LogFormat, TelemetrySettings};
use billhook_testkit::TestReceiver;
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::hook_server::HookServer;
use billhook_testkit::worker::wait_for_count;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;

/// A span as the collector got it, with the service that sent it.
#[derive(Debug)]
struct Exported {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

fn spans(collector: &HookServer) -> Vec<Exported> {
    let mut spans = Vec::new();
    for request in collector.received() {
        let export = ExportTraceServiceRequest::decode(request.body.as_slice())
            .expect("an OTLP/HTTP protobuf export");
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Exported {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
    }
    spans
}

#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_and_a_worker_process_export_one_trace_to_the_collector() {
    let collector = HookServer::start(&[], 200);
    let endpoint = collector.url.trim_end_matches("/hooks/billing").to_owned();
    let provider = billhook_core::telemetry::tracer_provider("billhook-receiver", Some(&endpoint))
        .expect("provider");
    let settings = TelemetrySettings {
        log_filter: "info".into(),
        log_format: LogFormat::Text,
        otlp_endpoint: Some(endpoint.clone()),
    };
    let guard = billhook_core::telemetry::install("billhook-receiver", provider.clone(), &settings)
        .expect("telemetry");
    let app = TestReceiver::spawn().await;
    let mut worker = Command::new(env!("CARGO_BIN_EXE_billhook-worker"))
        .env_clear()
        .env("DATABASE_URL", &app.db.url)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("BILLHOOK_LOG_FORMAT", "text")
        .env(
            "BILLHOOK_EMAIL_DIR",
            std::env::temp_dir().join("billhook-test-mail"),
        )
        .env("BILLHOOK_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("BILLHOOK_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("BILLHOOK_WORKER_POLL_INTERVAL", "100ms")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start billhook-worker run");

    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    assert_eq!(app.deliver(&event).await.status(), 200);
    // The worker is another process: its progress shows only in the database.
    wait_for_count(
        &app.db.pool,
        "SELECT count(*) FROM webhook_events WHERE status = 'applied'",
        1,
        Duration::from_secs(30),
    )
    .await;
    // SIGTERM: the worker drains, and its telemetry guard flushes the spans on the way out.
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = worker.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "billhook-worker did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}");
    provider.force_flush().expect("flush");

    let spans = spans(&collector);
    let by_service: HashMap<&str, Vec<&str>> =
        spans.iter().fold(HashMap::new(), |mut map, span| {
            map.entry(span.service.as_str())
                .or_default()
                .push(span.name.as_str());
            map
        });
    let find = |service: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.name == name)
            .unwrap_or_else(|| panic!("no `{name}` span from {service} in {by_service:?}"))
    };
    let webhook = find("billhook-receiver", "webhook");
    let task = find("billhook-worker", "task");
    let process = find("billhook-worker", "process_event");
    assert_eq!(
        task.trace_id, webhook.trace_id,
        "the task is in the request's trace"
    );
    assert_eq!(process.trace_id, webhook.trace_id);
    assert!(
        spans.iter().any(|s| s.service == "billhook-receiver"
            && s.trace_id == webhook.trace_id
            && s.span_id == task.parent_span_id),
        "the worker's task span is a child of a receiver span: {:?}",
        task.parent_span_id
    );
    drop(guard);
}
