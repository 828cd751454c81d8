//! The queue's Prometheus metrics: job runs, retries and dead letters as they happen; queue
//! depth, the age of the oldest waiting job (from apalis's table) and the dead letters not yet
//! requeued, read from the database when scraped.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::daemon::metrics::defined;
use sqlx::PgPool;

use super::jobs::{KINDS, QUEUES};

#[derive(Clone)]
pub struct QueueMetrics {
    jobs: IntCounterVec,
    job_seconds: HistogramVec,
    retries: IntCounterVec,
    dead_letters: IntCounterVec,
    queue_depth: IntGaugeVec,
    oldest_pending_seconds: IntGaugeVec,
    open_dead_letters: IntGaugeVec,
}

impl QueueMetrics {
    /// The metrics, not yet registered anywhere (see [`QueueMetrics::register`]).
    pub fn new() -> Self {
        Self {
            jobs: defined(IntCounterVec::new(
                Opts::new(
                    "billhook_worker_jobs_total",
                    "Job runs by kind and outcome (ok, retryable, permanent).",
                ),
                &["kind", "outcome"],
            )),
            job_seconds: defined(HistogramVec::new(
                HistogramOpts::new(
                    "billhook_worker_job_duration_seconds",
                    "Time one job run took, by kind.",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
                ]),
                &["kind"],
            )),
            retries: defined(IntCounterVec::new(
                Opts::new(
                    "billhook_worker_retries_total",
                    "Failed runs scheduled for another attempt.",
                ),
                &["kind"],
            )),
            dead_letters: defined(IntCounterVec::new(
                Opts::new(
                    "billhook_worker_dead_letters_total",
                    "Jobs written to the dead letters.",
                ),
                &["kind"],
            )),
            queue_depth: defined(IntGaugeVec::new(
                Opts::new(
                    "billhook_worker_queue_depth",
                    "Jobs waiting (pending, queued or retrying) per queue.",
                ),
                &["queue"],
            )),
            oldest_pending_seconds: defined(IntGaugeVec::new(
                Opts::new(
                    "billhook_worker_oldest_pending_seconds",
                    "Age of the oldest job waiting per queue.",
                ),
                &["queue"],
            )),
            open_dead_letters: defined(IntGaugeVec::new(
                Opts::new(
                    "billhook_worker_dead_letters_open",
                    "Dead letters not yet requeued, by kind.",
                ),
                &["kind"],
            )),
        }
    }

    pub fn register(&self, registry: &Registry) {
        for c in [
            Box::new(self.jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.job_seconds.clone()),
            Box::new(self.retries.clone()),
            Box::new(self.dead_letters.clone()),
            Box::new(self.queue_depth.clone()),
            Box::new(self.oldest_pending_seconds.clone()),
            Box::new(self.open_dead_letters.clone()),
        ] {
            defined(registry.register(c));
        }
    }

    /// One run of a job of `kind` ended with `outcome` (ok, retryable or permanent).
    pub fn job_finished(&self, kind: &str, outcome: &str, took: Duration) {
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

    /// Refreshes the gauges read from the database; on failure they keep their last values.
    pub async fn refresh(&self, pool: &PgPool) {
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
                for queue in QUEUES {
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
        let open: Result<Vec<(String, i64)>, _> = sqlx::query_as(
            "SELECT kind, count(*) FROM dead_letters WHERE requeued_at IS NULL GROUP BY kind",
        )
        .fetch_all(pool)
        .await;
        match open {
            Ok(rows) => {
                self.open_dead_letters.reset();
                for kind in KINDS {
                    self.open_dead_letters.with_label_values(&[kind]).set(0);
                }
                for (kind, count) in rows {
                    self.open_dead_letters
                        .with_label_values(&[&kind])
                        .set(count);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot count open dead letters for /metrics"),
        }
    }
}

impl Default for QueueMetrics {
    fn default() -> Self {
        Self::new()
    }
}
