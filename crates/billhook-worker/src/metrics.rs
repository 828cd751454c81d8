//! The worker's Prometheus metrics. One registry per running worker; queue depth and the age
//! of the oldest pending job are read from the database when scraped.

use std::time::Duration;

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use sqlx::PgPool;

use crate::runner::JobError;

/// Queues shown in the gauges even when empty.
const KNOWN_QUEUES: &[&str] = &[
    billhook_core::jobs::PROCESS_EVENT_QUEUE,
    billhook_core::jobs::NOTIFY_APP_QUEUE,
    billhook_core::jobs::SEND_EMAIL_QUEUE,
    billhook_core::jobs::DUNNING_STEP_QUEUE,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    jobs: IntCounterVec,
    job_seconds: HistogramVec,
    retries: IntCounterVec,
    dead_letters: IntCounterVec,
    events: IntCounterVec,
    lag_seconds: HistogramVec,
    queue_depth: IntGaugeVec,
    oldest_pending_seconds: IntGaugeVec,
}

fn defined<T>(metric: prometheus::Result<T>) -> T {
    metric.unwrap_or_else(|e| unreachable!("static metric definition: {e}"))
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let jobs = defined(IntCounterVec::new(
            Opts::new(
                "billhook_worker_jobs_total",
                "Job runs by kind and outcome (ok, retryable, permanent).",
            ),
            &["kind", "outcome"],
        ));
        let job_seconds = defined(HistogramVec::new(
            HistogramOpts::new(
                "billhook_worker_job_duration_seconds",
                "Time one job run took, by kind.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
            ]),
            &["kind"],
        ));
        let retries = defined(IntCounterVec::new(
            Opts::new(
                "billhook_worker_retries_total",
                "Failed runs scheduled for another attempt.",
            ),
            &["kind"],
        ));
        let dead_letters = defined(IntCounterVec::new(
            Opts::new(
                "billhook_worker_dead_letters_total",
                "Jobs written to the dead letters.",
            ),
            &["kind"],
        ));
        let events = defined(IntCounterVec::new(
            Opts::new(
                "billhook_worker_events_total",
                "Events finished, by type and status (applied, ignored, stale).",
            ),
            &["type", "status"],
        ));
        let lag_seconds = defined(HistogramVec::new(
            HistogramOpts::new(
                "billhook_worker_event_lag_seconds",
                "Time from receipt to applied.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
            ]),
            &["status"],
        ));
        let queue_depth = defined(IntGaugeVec::new(
            Opts::new(
                "billhook_worker_queue_depth",
                "Jobs waiting (pending, queued or retrying) per queue.",
            ),
            &["queue"],
        ));
        let oldest_pending_seconds = defined(IntGaugeVec::new(
            Opts::new(
                "billhook_worker_oldest_pending_seconds",
                "Age of the oldest job waiting per queue.",
            ),
            &["queue"],
        ));
        for c in [
            Box::new(jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(job_seconds.clone()),
            Box::new(retries.clone()),
            Box::new(dead_letters.clone()),
            Box::new(events.clone()),
            Box::new(lag_seconds.clone()),
            Box::new(queue_depth.clone()),
            Box::new(oldest_pending_seconds.clone()),
        ] {
            defined(registry.register(c));
        }
        Self {
            registry,
            jobs,
            job_seconds,
            retries,
            dead_letters,
            events,
            lag_seconds,
            queue_depth,
            oldest_pending_seconds,
        }
    }

    pub fn job_finished(&self, kind: &str, result: &Result<(), JobError>, took: Duration) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(JobError::Retryable(_)) => "retryable",
            Err(JobError::Permanent(_)) => "permanent",
        };
        self.jobs.with_label_values(&[kind, outcome]).inc();
        self.job_seconds
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
    }

    pub fn retried(&self, kind: &str) {
        self.retries.with_label_values(&[kind]).inc();
    }

    pub fn dead_lettered(&self, kind: &str) {
        self.dead_letters.with_label_values(&[kind]).inc();
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

    /// Refreshes the gauges read from the database, then renders the registry.
    pub async fn render(&self, pool: &PgPool) -> String {
        let rows: Result<Vec<(String, i64, Option<f64>)>, _> = sqlx::query_as(
            "SELECT job_type, count(*),
                    extract(epoch FROM now() - min(run_at))::float8
               FROM apalis.jobs
              WHERE status IN ('Pending', 'Queued') OR (status = 'Failed' AND attempts < max_attempts)
              GROUP BY job_type",
        )
        .fetch_all(pool)
        .await;
        match rows {
            Ok(rows) => {
                self.queue_depth.reset();
                self.oldest_pending_seconds.reset();
                // Known queues show 0 rather than vanishing when empty.
                for queue in KNOWN_QUEUES {
                    self.queue_depth.with_label_values(&[queue]).set(0);
                    self.oldest_pending_seconds
                        .with_label_values(&[queue])
                        .set(0);
                }
                for (queue, depth, oldest) in rows {
                    self.queue_depth.with_label_values(&[&queue]).set(depth);
                    let oldest = oldest.unwrap_or(0.0).max(0.0) as i64;
                    self.oldest_pending_seconds
                        .with_label_values(&[&queue])
                        .set(oldest);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the queue depth for /metrics"),
        }
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
