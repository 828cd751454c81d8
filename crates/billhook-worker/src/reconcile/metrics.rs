//! Metrics of reconciliation: runs by outcome, events recovered, the watermark's age (read
//! from the database at each scrape, so every worker reports the shared watermark), and what
//! the last run found wrong.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use sqlx::PgPool;

use crate::daemon::metrics::defined;

#[derive(Clone)]
pub struct ReconcileMetrics {
    runs: IntCounterVec,
    recovered: IntCounter,
    watermark_age: IntGauge,
    problems: IntGauge,
    endpoint_disabled: IntGauge,
    endpoint_missing_types: IntGauge,
}

impl ReconcileMetrics {
    pub fn new() -> Self {
        let gauge = |name: &str, help: &str| defined(IntGauge::new(name, help));
        Self {
            runs: defined(IntCounterVec::new(
                Opts::new(
                    "billhook_reconcile_runs_total",
                    "Reconciliation runs by outcome (succeeded, failed) in this process.",
                ),
                &["outcome"],
            )),
            recovered: defined(IntCounter::new(
                "billhook_reconcile_events_recovered_total",
                "Events missing from the inbox that reconciliation stored from Stripe's Events API.",
            )),
            watermark_age: gauge(
                "billhook_reconcile_watermark_age_seconds",
                "Age of reconciliation's watermark: events created before it are known stored. \
                 Stripe's Events API keeps 30 days (2592000 s); -1 before the first run.",
            ),
            problems: gauge(
                "billhook_reconcile_problems",
                "Problems the last reconciliation run reported (watermark near or past the Events \
                 API's horizon, endpoint disabled or missing types, unreadable events).",
            ),
            endpoint_disabled: gauge(
                "billhook_reconcile_endpoint_disabled",
                "1 when the last run found the Stripe webhook endpoint disabled or missing.",
            ),
            endpoint_missing_types: gauge(
                "billhook_reconcile_endpoint_missing_types",
                "Handled event types the Stripe webhook endpoint does not send (last run).",
            ),
        }
    }

    pub fn register(&self, registry: &Registry) {
        defined(registry.register(Box::new(self.runs.clone())));
        defined(registry.register(Box::new(self.recovered.clone())));
        defined(registry.register(Box::new(self.watermark_age.clone())));
        defined(registry.register(Box::new(self.problems.clone())));
        defined(registry.register(Box::new(self.endpoint_disabled.clone())));
        defined(registry.register(Box::new(self.endpoint_missing_types.clone())));
    }

    pub fn run_finished(&self, outcome: &str, recovered: usize, problems: usize) {
        self.runs.with_label_values(&[outcome]).inc();
        self.recovered.inc_by(recovered as u64);
        self.problems.set(problems as i64);
    }

    pub fn endpoint(&self, disabled: bool, missing_types: usize) {
        self.endpoint_disabled.set(i64::from(disabled));
        self.endpoint_missing_types.set(missing_types as i64);
    }

    /// Reads the watermark's age; a failed read leaves the last figure.
    pub async fn refresh(&self, pool: &PgPool) {
        let age: Result<Option<f64>, _> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - watermark)::float8 FROM reconcile_state",
        )
        .fetch_optional(pool)
        .await;
        if let Ok(age) = age {
            self.watermark_age.set(age.map_or(-1, |a| a as i64));
        }
    }
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        Self::new()
    }
}
