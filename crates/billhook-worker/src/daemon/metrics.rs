//! The worker's Prometheus registry: one per running worker, holding the queue's metrics, the
//! billing metrics and reconciliation's, rendered on the admin listener's /metrics.

use prometheus::{Encoder as _, Registry, TextEncoder};
use sqlx::PgPool;

use crate::billing::metrics::EventMetrics;
use crate::queue::QueueMetrics;
use crate::reconcile::metrics::ReconcileMetrics;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub queue: QueueMetrics,
    pub events: EventMetrics,
    pub reconcile: ReconcileMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let queue = QueueMetrics::new();
        queue.register(&registry);
        let events = EventMetrics::new();
        events.register(&registry);
        let reconcile = ReconcileMetrics::new();
        reconcile.register(&registry);
        Self {
            registry,
            queue,
            events,
            reconcile,
        }
    }

    /// Refreshes the gauges read from the database, then renders the registry.
    pub async fn render(&self, pool: &PgPool) -> String {
        self.queue.refresh(pool).await;
        self.reconcile.refresh(pool).await;
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A metric whose definition is fixed in the code: a failure is a programming error, caught
/// by any test that builds the registry.
pub fn defined<T>(metric: prometheus::Result<T>) -> T {
    metric.unwrap_or_else(|e| unreachable!("static metric definition: {e}"))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
