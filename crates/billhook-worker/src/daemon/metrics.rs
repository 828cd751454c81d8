//! The worker's Prometheus registry: one per running worker, holding the queue's metrics and
//! the billing metrics, rendered on the admin listener's /metrics.

use prometheus::{Encoder as _, Registry, TextEncoder};
use sqlx::PgPool;

use crate::billing::metrics::EventMetrics;
use crate::queue::QueueMetrics;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub queue: QueueMetrics,
    pub events: EventMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let queue = QueueMetrics::new();
        queue.register(&registry);
        let events = EventMetrics::new();
        events.register(&registry);
        Self {
            registry,
            queue,
            events,
        }
    }

    /// Refreshes the gauges read from the database, then renders the registry.
    pub async fn render(&self, pool: &PgPool) -> String {
        self.queue.refresh(pool).await;
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
