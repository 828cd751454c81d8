//! Dead letters: jobs that exhausted their retries or failed permanently, kept with their
//! whole history until an engineer requeues them. Requeue resets the apalis job in place (same
//! id, fresh attempts, due now), wakes the workers, and records who did it and why.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

pub struct NewDeadLetter<'a> {
    pub job_id: &'a str,
    pub kind: &'a str,
    pub queue: &'a str,
    pub argument: &'a serde_json::Value,
    pub event_id: Option<&'a str>,
    pub error: &'a str,
    pub attempts: u32,
}

/// Writes (or, for a job that died again after a requeue, refreshes) the dead letter, with
/// every recorded failure of the job as its history.
pub async fn write(conn: &mut PgConnection, d: &NewDeadLetter<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO dead_letters (job_id, kind, queue, argument, event_id, error, attempts, history)
         SELECT $1, $2, $3, $4, $5, $6, $7,
                coalesce(jsonb_agg(jsonb_build_object('attempt', attempt, 'error', error,
                         'retryable', retryable, 'at', failed_at) ORDER BY id), '[]')
           FROM job_failures WHERE job_id = $1
         ON CONFLICT (job_id) DO UPDATE SET
           error = EXCLUDED.error, attempts = EXCLUDED.attempts, history = EXCLUDED.history,
           dead_at = now(), requeued_at = NULL",
    )
    .bind(d.job_id)
    .bind(d.kind)
    .bind(d.queue)
    .bind(d.argument)
    .bind(d.event_id)
    .bind(d.error)
    .bind(d.attempts as i32)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub job_id: String,
    pub kind: String,
    pub queue: String,
    pub argument: serde_json::Value,
    pub event_id: Option<String>,
    pub error: String,
    pub attempts: i32,
    pub history: serde_json::Value,
    pub dead_at: DateTime<Utc>,
    pub requeued_at: Option<DateTime<Utc>>,
    pub requeue_history: serde_json::Value,
}

/// Which dead letters a requeue or a listing applies to. Selectors combine with AND.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub job_ids: Vec<String>,
    pub event_ids: Vec<String>,
    /// Event type (for ProcessEvent) or job kind.
    pub event_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Include the ones already requeued.
    pub include_requeued: bool,
}

impl Selection {
    fn push_where(&self, q: &mut QueryBuilder<Postgres>) {
        q.push(" WHERE true");
        if !self.include_requeued {
            q.push(" AND d.requeued_at IS NULL");
        }
        if !self.job_ids.is_empty() {
            q.push(" AND d.job_id = ANY(")
                .push_bind(self.job_ids.clone())
                .push(")");
        }
        if !self.event_ids.is_empty() {
            q.push(" AND d.event_id = ANY(")
                .push_bind(self.event_ids.clone())
                .push(")");
        }
        if let Some(t) = &self.event_type {
            q.push(" AND (d.kind = ")
                .push_bind(t.clone())
                .push(" OR EXISTS (SELECT 1 FROM webhook_events e WHERE e.id = d.event_id AND e.type = ")
                .push_bind(t.clone())
                .push("))");
        }
        if let Some(since) = self.since {
            q.push(" AND d.dead_at >= ").push_bind(since);
        }
    }
}

pub async fn list(pool: &PgPool, selection: &Selection) -> sqlx::Result<Vec<DeadLetter>> {
    let mut q = QueryBuilder::new("SELECT d.* FROM dead_letters d");
    selection.push_where(&mut q);
    q.push(" ORDER BY d.dead_at");
    q.build_query_as().fetch_all(pool).await
}

pub async fn show(pool: &PgPool, job_id: &str) -> sqlx::Result<Option<DeadLetter>> {
    sqlx::query_as("SELECT * FROM dead_letters WHERE job_id = $1")
        .bind(job_id)
        .fetch_optional(pool)
        .await
}

/// Resets each selected job in place and records the requeue. Returns what was requeued.
/// With `dry_run`, returns the selection and changes nothing.
pub async fn requeue(
    pool: &PgPool,
    selection: &Selection,
    by: &str,
    reason: &str,
    dry_run: bool,
) -> anyhow::Result<Vec<DeadLetter>> {
    let selected = list(pool, selection).await?;
    if dry_run {
        return Ok(selected);
    }
    let mut tx = pool.begin().await?;
    for letter in &selected {
        let reset = sqlx::query(
            "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(),
                    lock_by = NULL, lock_at = NULL, done_at = NULL, last_result = NULL
              WHERE id = $1",
        )
        .bind(&letter.job_id)
        .execute(&mut *tx)
        .await?;
        if reset.rows_affected() == 0 {
            anyhow::bail!(
                "job {} is no longer in apalis.jobs; it cannot be requeued in place",
                letter.job_id
            );
        }
        sqlx::query(
            "UPDATE dead_letters SET requeued_at = now(),
                    requeue_history = requeue_history || jsonb_build_array(
                        jsonb_build_object('at', now(), 'by', $2::text, 'reason', $3::text))
              WHERE job_id = $1",
        )
        .bind(&letter.job_id)
        .bind(by)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        // Who requeued what and why. An operator's action, not an effect of the event: the
        // event id goes in the detail, `event_id` (what an event caused) stays empty.
        sqlx::query(
            "INSERT INTO audit_log (event_id, entity, entity_id, action, detail, actor) \
             VALUES (NULL, 'dead_letter', $2, 'requeued', \
                     jsonb_build_object('kind', $3::text, 'reason', $4::text, 'event_id', $1::text), $5)",
        )
        .bind(&letter.event_id)
        .bind(&letter.job_id)
        .bind(&letter.kind)
        .bind(reason)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        if let Some(event_id) = &letter.event_id {
            sqlx::query(
                "UPDATE webhook_events SET status = 'received', updated_at = now()
                  WHERE id = $1 AND status = 'dead'",
            )
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        }
        // NOTIFY is delivered at commit; workers also poll, so a lost one only delays.
        sqlx::query(
            "SELECT pg_notify('apalis::job::insert', json_build_object('job_type', $1::text, 'id', $2::text)::text)",
        )
        .bind(&letter.queue)
        .bind(&letter.job_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(selected)
}
