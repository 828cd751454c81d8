//! The machinery every job kind runs on: decoding, panics, retries with backoff, failure
//! history and dead letters. Built once, generic over the kind.
//!
//! Retries are durable: a retryable failure moves the job's `run_at` forward by the backoff
//! and returns an error, so apalis marks it `Failed` and fetches it again only once it is due.
//! Nothing sleeps in-process, a restart loses no schedule, and a retrying job holds no slot.
//! A permanent failure or the last attempt writes the dead letter and ends the job with
//! `AbortError` (status `Killed`) or as `Failed` with attempts exhausted.
//!
//! Errors: a handler returns `JobError`, saying whether a retry can help; everything else
//! here is `anyhow`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data, TaskId};
use billhook_core::jobs::Job;
use futures_util::FutureExt as _;
use sqlx::PgPool;

use super::dead_letter;
use super::error::JobError;
use super::metrics::QueueMetrics;

/// One kind of job: its argument (which names its queue and kind) and how to run it.
pub trait JobKind: Send + Sync + 'static {
    type Args: Job;

    /// The Stripe event a job belongs to, if any, for dead letters and requeue by event.
    fn event_id(args: &serde_json::Value) -> Option<String>;

    /// Runs the job once. It must be safe to run again: a crash after the work committed but
    /// before the job was marked done re-runs it.
    fn run(&self, args: Self::Args) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Records a failed attempt on the kind's own rows (for ProcessEvent, the event's status);
    /// `dead` on the last one. Runs in the transaction that writes the failure (and the dead
    /// letter), so the two are never seen apart.
    fn record_failure(
        &self,
        conn: &mut sqlx::PgConnection,
        args: &serde_json::Value,
        attempt: u32,
        error: &str,
        dead: bool,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Exponential backoff with ±50 % jitter: `base × 2^(attempt-1)`, capped at `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let nominal = self.base.saturating_mul(1u32 << exp).min(self.max);
        let jitter = 0.5 + rand::random::<f64>();
        nominal.mul_f64(jitter).min(self.max)
    }
}

/// Everything the generic handler needs besides the kind.
pub struct Runner<K> {
    pub kind: K,
    pub pool: PgPool,
    pub metrics: QueueMetrics,
    pub backoff: Backoff,
}

/// The apalis handler for every kind. Arguments arrive as JSON values so that an argument of
/// the wrong shape is this job's permanent failure, never a stopped worker.
pub async fn handle<K: JobKind>(
    args: serde_json::Value,
    task_id: TaskId,
    attempt: Attempt,
    runner: Data<Arc<Runner<K>>>,
) -> Result<(), BoxDynError> {
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX).max(1);
    let job_id = task_id.to_string();
    let started = Instant::now();
    let result = match serde_json::from_value::<K::Args>(args.clone()) {
        Ok(decoded) => AssertUnwindSafe(runner.kind.run(decoded))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(JobError::Retryable(panic_error(&panic)))),
        Err(e) => Err(JobError::Permanent(
            anyhow::Error::new(e).context("the job argument cannot be decoded"),
        )),
    };
    let outcome = result.as_ref().map_or_else(JobError::outcome, |()| "ok");
    runner
        .metrics
        .job_finished(K::Args::KIND, outcome, started.elapsed());
    let Err(error) = result else {
        return Ok(());
    };
    match runner.fail(&job_id, &args, attempt, &error).await {
        Ok(Fate::Retry(delay)) => {
            tracing::warn!(attempt, retry_in = %humantime::format_duration(round_ms(delay)), error = %error,
                "job failed; will retry");
            Err(error.into())
        }
        Ok(Fate::Dead) => {
            tracing::error!(attempt, error = %error, "job dead-lettered");
            Err(AbortError::new(error).into())
        }
        // Recording failed too (the database is likely down): leave the job to apalis, which
        // fetches it again; nothing is lost.
        Err(record_error) => {
            tracing::error!(attempt, error = %error, record_error = %format!("{record_error:#}"),
                "job failed and the failure could not be recorded");
            Err(error.into())
        }
    }
}

enum Fate {
    Retry(Duration),
    Dead,
}

impl<K: JobKind> Runner<K> {
    async fn fail(
        &self,
        job_id: &str,
        args: &serde_json::Value,
        attempt: u32,
        error: &JobError,
    ) -> anyhow::Result<Fate> {
        let message = format!("{error}");
        let max_attempts = max_attempts(&self.pool, job_id).await?;
        let dead = !error.is_retryable() || attempt >= max_attempts;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO job_failures (job_id, kind, attempt, retryable, error, event_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(job_id)
        .bind(K::Args::KIND)
        .bind(attempt as i32)
        .bind(error.is_retryable())
        .bind(&message)
        .bind(K::event_id(args).as_deref())
        .execute(&mut *tx)
        .await?;
        let fate = if dead {
            dead_letter::write(
                &mut tx,
                &dead_letter::NewDeadLetter {
                    job_id,
                    kind: K::Args::KIND,
                    queue: K::Args::QUEUE,
                    argument: args,
                    event_id: K::event_id(args).as_deref(),
                    error: &message,
                    attempts: attempt,
                },
            )
            .await?;
            self.metrics.dead_lettered(K::Args::KIND);
            Fate::Dead
        } else {
            let delay = self.backoff.delay(attempt);
            sqlx::query(
                "UPDATE apalis.jobs SET run_at = now() + make_interval(secs => $2) WHERE id = $1",
            )
            .bind(job_id)
            .bind(delay.as_secs_f64())
            .execute(&mut *tx)
            .await?;
            self.metrics.retried(K::Args::KIND);
            Fate::Retry(delay)
        };
        self.kind
            .record_failure(&mut tx, args, attempt, &message, dead)
            .await?;
        tx.commit().await?;
        Ok(fate)
    }
}

async fn max_attempts(pool: &PgPool, job_id: &str) -> anyhow::Result<u32> {
    let max: Option<i32> = sqlx::query_scalar("SELECT max_attempts FROM apalis.jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(pool)
        .await?;
    Ok(max.map_or(1, |m| m.max(1) as u32))
}

/// A delay to the millisecond, for a readable log line.
fn round_ms(delay: Duration) -> Duration {
    Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

fn panic_error(panic: &Box<dyn std::any::Any + Send>) -> anyhow::Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    anyhow::anyhow!("the handler panicked: {message}")
}
