//! Metrics of applying events: events finished by type and status, and the time from receipt
//! to finished.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::daemon::metrics::defined;

#[derive(Clone)]
pub struct EventMetrics {
    events: IntCounterVec,
    lag_seconds: HistogramVec,
}

impl EventMetrics {
    /// The metrics, not yet registered anywhere (see [`EventMetrics::register`]).
    pub fn new() -> Self {
        Self {
            events: defined(IntCounterVec::new(
                Opts::new(
                    "billhook_worker_events_total",
                    "Events finished, by type and status (applied, ignored, stale).",
                ),
                &["type", "status"],
            )),
            lag_seconds: defined(HistogramVec::new(
                HistogramOpts::new(
                    "billhook_worker_event_lag_seconds",
                    "Time from receipt to applied.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
                ]),
                &["status"],
            )),
        }
    }

    pub fn register(&self, registry: &Registry) {
        defined(registry.register(Box::new(self.events.clone())));
        defined(registry.register(Box::new(self.lag_seconds.clone())));
    }

    pub fn event_finished(
        &self,
        event_type: &str,
        status: &str,
        received_at: chrono::DateTime<chrono::Utc>,
    ) {
        self.events.with_label_values(&[event_type, status]).inc();
        let lag = (chrono::Utc::now() - received_at)
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1e6;
        self.lag_seconds
            .with_label_values(&[status])
            .observe(lag.max(0.0));
    }
}

impl Default for EventMetrics {
    fn default() -> Self {
        Self::new()
    }
}
