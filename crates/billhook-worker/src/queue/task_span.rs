//! The span every job runs in: `task{task_id=…}`, continuing the trace of whoever enqueued the
//! job (the W3C trace context in the job's metadata). apalis's own `ContextualTaskSpan` does the
//! same but also names an attempt number that lags the real one by one on retries; the attempt
//! is the runner's to log (`queue::runner`), once.

use apalis::layers::tracing::{MakeSpan, TracingContext};
use apalis::prelude::{Metadata as _, Task};
use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

#[derive(Debug, Clone, Copy, Default)]
pub struct TaskSpan;

impl<Args> MakeSpan<Args> for TaskSpan {
    fn make_span(&mut self, task: &Task<Args>) -> Span {
        let task_id = task.task_id().map(ToString::to_string).unwrap_or_default();
        // INFO, not DEBUG: a span filtered out would cut the trace the receiver started.
        let span = tracing::info_span!("task", task_id = %task_id);
        let context = TracingContext::extract(task.metadata()).unwrap_or_default();
        if let Some(carrier) = Carrier::of(&context) {
            let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
            if parent.span().span_context().is_valid() {
                let _ = span.set_parent(parent);
            }
        }
        span
    }
}

/// The job's trace context as the W3C headers the propagator reads.
struct Carrier {
    traceparent: String,
    tracestate: Option<String>,
}

impl Carrier {
    fn of(context: &TracingContext) -> Option<Self> {
        let trace_id = context.trace_id().as_deref()?;
        let span_id = context.span_id().as_deref()?;
        let flags = context.trace_flags().unwrap_or_default();
        Some(Self {
            traceparent: format!("00-{trace_id}-{span_id}-{flags:02x}"),
            tracestate: context.trace_state().clone(),
        })
    }
}

impl opentelemetry::propagation::Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        match key.to_ascii_lowercase().as_str() {
            "traceparent" => Some(&self.traceparent),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec!["traceparent"];
        if self.tracestate.is_some() {
            keys.push("tracestate");
        }
        keys
    }
}
