//! Logs and traces. Logs are JSON lines (or text for a terminal) through `tracing`; every line
//! inside a span carries that span's fields, so a line about an event carries its id and type.
//! An OpenTelemetry tracer is always installed so each request has a trace id to hand on to
//! its jobs; spans are exported over OTLP/HTTP only when an endpoint is configured.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, TelemetrySettings};

/// Flushes pending spans when dropped; keep it alive for the life of the process.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Nothing useful can be done with a failed flush at exit; the collector may be gone.
        let _ = self.provider.shutdown();
    }
}

/// The tracer provider: exporting over OTLP/HTTP when `otlp_endpoint` is set, otherwise only
/// minting trace ids for propagation.
pub fn tracer_provider(
    service: &'static str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder().with_service_name(service).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = otlp_endpoint {
        let endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
            .context("cannot build the OTLP exporter (OTEL_EXPORTER_OTLP_ENDPOINT)")?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Installs the global subscriber and propagator. Call once, at the start of `main`.
pub fn init(service: &'static str, settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    let provider = tracer_provider(service, settings.otlp_endpoint.as_deref())?;
    install_with(service, provider, settings, Output::Stdout)
}

/// Where log lines go.
#[derive(Clone, Copy)]
enum Output {
    Stdout,
    /// The test harness's captured output: shown only for a test that fails.
    TestHarness,
}

/// The filter as given, with PostgreSQL's notices (`schema "apalis" already exists` while
/// migrating, say) kept to warnings unless the filter says something about sqlx itself.
fn filter_directives(filter: &str) -> String {
    if filter.contains("sqlx") {
        filter.to_owned()
    } else {
        format!("{filter},sqlx::postgres::notice=warn")
    }
}

/// For tests: like `init`, with a tracer provider of the caller's (an in-memory exporter, say),
/// and log lines written to the test harness's captured output rather than the terminal.
pub fn install(
    service: &'static str,
    provider: SdkTracerProvider,
    settings: &TelemetrySettings,
) -> anyhow::Result<TelemetryGuard> {
    install_with(service, provider, settings, Output::TestHarness)
}

fn install_with(
    service: &'static str,
    provider: SdkTracerProvider,
    settings: &TelemetrySettings,
    output: Output,
) -> anyhow::Result<TelemetryGuard> {
    let filter =
        EnvFilter::try_new(filter_directives(&settings.log_filter)).with_context(|| {
            format!(
                "BILLHOOK_LOG `{}` is not a valid filter",
                settings.log_filter
            )
        })?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    let json = || {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
    };
    let fmt = match (settings.log_format, output) {
        (LogFormat::Json, Output::Stdout) => json().boxed(),
        (LogFormat::Json, Output::TestHarness) => json().with_test_writer().boxed(),
        (LogFormat::Text, Output::Stdout) => tracing_subscriber::fmt::layer().boxed(),
        (LogFormat::Text, Output::TestHarness) => tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_ansi(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(fmt)
        .try_init()
        .context("a tracing subscriber is already installed")?;
    Ok(TelemetryGuard { provider })
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;

    use opentelemetry::trace::{Tracer as _, TracerProvider as _};

    /// A collector stand-in: answers 200 to every request and reports each request line.
    fn collector() -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                let _ = (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                let _ = tx.send(line.trim().to_owned());
            }
        });
        (url, rx)
    }

    /// The exporter the binaries build, on its own export thread as in production: a span
    /// reaches the collector (with the async HTTP client it panicked there and sent nothing).
    #[test]
    fn spans_reach_the_otlp_endpoint() {
        let (url, requests) = collector();
        let provider = super::tracer_provider("billhook-test", Some(&url)).expect("provider");
        provider.tracer("test").in_span("a span", |_| {});
        provider.force_flush().expect("flush");
        let request = requests
            .recv_timeout(Duration::from_secs(10))
            .expect("the collector got a request");
        assert_eq!(request, "POST /v1/traces HTTP/1.1");
        let _ = provider.shutdown();
    }
}
