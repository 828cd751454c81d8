//! Waiting for the queue to run dry: every job that is due (or comes due within a horizon) has
//! run to completion, and none is in flight. With workers running ([`super::Workers`], or a
//! whole daemon), this is "run every due job and return": what a test does instead of polling
//! for the rows a follow-up job writes, and what a one-off command does before it exits.

use std::time::{Duration, Instant};

use sqlx::PgPool;

/// How often the queue is looked at while waiting.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// Jobs still to run: fetched and not finished, or waiting and due within `within` (retries
/// included while they have attempts left). Jobs scheduled later, finished, dead or killed are
/// not counted.
pub async fn outstanding(pool: &PgPool, within: Duration) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs
          WHERE status IN ('Queued', 'Running')
             OR ((status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
                 AND run_at < now() + make_interval(secs => $1))",
    )
    .bind(within.as_secs_f64())
    .fetch_one(pool)
    .await
}

/// Returns once no job is outstanding (see [`outstanding`]); fails after `limit` with how many
/// still are.
pub async fn until_idle(pool: &PgPool, within: Duration, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let left = outstanding(pool, within).await?;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{left} job(s) still outstanding after {limit:?}");
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}
