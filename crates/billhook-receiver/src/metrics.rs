//! The receiver's Prometheus metrics. One registry per `Application`, so two apps in one test
//! process never share counts.

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry,
    TextEncoder,
};

/// What became of a request, as counted in `billhook_receiver_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Ignored,
    Duplicate,
    Unauthorized,
    RateLimited,
    Malformed,
    TooLarge,
    TooSlow,
    Unavailable,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Ignored => "ignored",
            Self::Duplicate => "duplicate",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::TooSlow => "too_slow",
            Self::Unavailable => "unavailable",
            Self::Error => "error",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    signature_failures: IntCounterVec,
    ignored: IntCounterVec,
    ingest_seconds: HistogramVec,
    batch_events: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "billhook_receiver_requests_total",
                "Webhook requests by outcome.",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let signature_failures = IntCounterVec::new(
            Opts::new(
                "billhook_receiver_signature_failures_total",
                "Requests refused by signature verification, by reason.",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        // Only verified events are counted, so the types are Stripe's (a few hundred at most).
        let ignored = IntCounterVec::new(
            Opts::new(
                "billhook_receiver_ignored_events_total",
                "Verified events stored as ignored (no handler), by event type.",
            ),
            &["type"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let ingest_seconds = HistogramVec::new(
            HistogramOpts::new(
                "billhook_receiver_ingest_duration_seconds",
                "Time from request start to response, by outcome.",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["outcome"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let batch_events = Histogram::with_opts(
            HistogramOpts::new(
                "billhook_receiver_ingest_batch_events",
                "Events written per ingest transaction (requests in flight stored together).",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(signature_failures.clone()),
            Box::new(ignored.clone()),
            Box::new(ingest_seconds.clone()),
            Box::new(batch_events.clone()),
        ] {
            registry
                .register(collector)
                .unwrap_or_else(|e| unreachable!("metric names are distinct: {e}"));
        }
        Self {
            registry,
            requests,
            signature_failures,
            ignored,
            ingest_seconds,
            batch_events,
        }
    }

    /// An ingest transaction was written with `events` deliveries.
    pub fn batch(&self, events: usize) {
        self.batch_events.observe(events as f64);
    }

    pub fn observe(&self, outcome: Outcome, seconds: f64) {
        self.requests.with_label_values(&[outcome.as_str()]).inc();
        self.ingest_seconds
            .with_label_values(&[outcome.as_str()])
            .observe(seconds);
    }

    /// A new event of a type no handler applies.
    pub fn ignored(&self, event_type: &str) {
        self.ignored.with_label_values(&[event_type]).inc();
    }

    pub fn signature_failure(&self, reason: &str) {
        self.signature_failures.with_label_values(&[reason]).inc();
    }

    /// The registry in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
