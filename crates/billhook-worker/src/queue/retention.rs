//! Deletes finished jobs from apalis's table after the retention period; apalis-postgres
//! never does. Failed and killed jobs stay: dead letters point at them for requeue.

use std::time::Duration;

use sqlx::PgPool;

/// Deletes up to `batch` `Done` jobs finished more than `retention` ago; returns how many.
pub async fn sweep(pool: &PgPool, retention: Duration, batch: i64) -> sqlx::Result<u64> {
    let deleted = sqlx::query(
        "DELETE FROM apalis.jobs WHERE id IN (
            SELECT id FROM apalis.jobs
             WHERE status = 'Done' AND done_at < now() - make_interval(secs => $1)
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(retention.as_secs_f64())
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}

/// Sweeps every `every` until the task is dropped.
pub async fn run(pool: PgPool, retention: Duration, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        loop {
            match sweep(&pool, retention, 10_000).await {
                Ok(10_000) => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(deleted = n, "old finished jobs removed");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "job retention sweep failed");
                    break;
                }
            }
        }
    }
}
