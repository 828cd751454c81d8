//! Reconciliation's rows: the watermark (`reconcile_state`) and one row per run
//! (`reconcile_runs`), updated after every page so `reconcile --status` and the console see a
//! run's progress while it lasts.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::plan::Plan;

/// How many recovered event ids a run keeps, for the operator to look at.
pub const SAMPLE: usize = 20;

pub async fn watermark(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT watermark FROM reconcile_state")
        .fetch_optional(pool)
        .await
}

/// Moves the watermark forward to `to`; never back (a `--since` run over older days leaves a
/// later watermark where it is).
pub async fn advance(pool: &PgPool, to: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reconcile_state (watermark) VALUES ($1) \
         ON CONFLICT (id) DO UPDATE SET watermark = GREATEST(reconcile_state.watermark, EXCLUDED.watermark), \
                                        updated_at = now()",
    )
    .bind(to)
    .execute(pool)
    .await?;
    Ok(())
}

/// Where Billhook's own history starts, for the first run: the earlier of the oldest stored
/// event's `created` and the start of the latest sync that succeeded (events between a first
/// sync and the first webhook are Billhook's to apply).
pub async fn history_start(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT least((SELECT min(created) FROM webhook_events), \
                      (SELECT max(started_at) FROM sync_runs WHERE outcome = 'succeeded'))",
    )
    .fetch_one(pool)
    .await
}

/// When the last run that was not a dry run started (any outcome but interrupted).
pub async fn last_started(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT max(started_at) FROM reconcile_runs WHERE NOT dry_run AND outcome <> 'interrupted'",
    )
    .fetch_one(pool)
    .await
}

/// Marks runs left `running` as interrupted; called by the holder of the lock, so none of them
/// can still be running.
pub async fn interrupt_abandoned(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE reconcile_runs SET outcome = 'interrupted', finished_at = now(), \
           error = 'the process stopped before the run finished' \
         WHERE outcome = 'running'",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn start(
    pool: &PgPool,
    trigger: &str,
    dry_run: bool,
    plan: &Plan,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO reconcile_runs (trigger, dry_run, since, until, problems) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(trigger)
    .bind(dry_run)
    .bind(plan.since)
    .bind(plan.until)
    .bind(&plan.problems)
    .fetch_one(pool)
    .await
}

/// Adds one page's figures to the run.
pub async fn page(
    pool: &PgPool,
    run: i64,
    seen: usize,
    recovered: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reconcile_runs SET pages = pages + 1, events_seen = events_seen + $2, \
           events_recovered = events_recovered + $3, \
           recovered_sample = (recovered_sample || $4::text[])[1:$5] \
         WHERE id = $1",
    )
    .bind(run)
    .bind(i32::try_from(seen).unwrap_or(i32::MAX))
    .bind(i32::try_from(recovered.len()).unwrap_or(i32::MAX))
    .bind(recovered)
    .bind(SAMPLE as i32)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn covered(pool: &PgPool, run: i64, until: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reconcile_runs SET covered_until = $2 WHERE id = $1")
        .bind(run)
        .bind(until)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn endpoint(
    pool: &PgPool,
    run: i64,
    endpoint: &serde_json::Value,
    problems: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reconcile_runs SET endpoint = $2, problems = problems || $3::text[] WHERE id = $1",
    )
    .bind(run)
    .bind(endpoint)
    .bind(problems)
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds problems found while listing (an event Billhook cannot read).
pub async fn problems(pool: &PgPool, run: i64, problems: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reconcile_runs SET problems = problems || $2::text[] WHERE id = $1")
        .bind(run)
        .bind(problems)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn finish(pool: &PgPool, run: i64, error: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reconcile_runs SET finished_at = now(), error = $2, \
           outcome = CASE WHEN $2::text IS NULL THEN 'succeeded' ELSE 'failed' END \
         WHERE id = $1",
    )
    .bind(run)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// One run as `reconcile --status` shows it.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub trigger: String,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub covered_until: Option<DateTime<Utc>>,
    pub pages: i32,
    pub events_seen: i32,
    pub events_recovered: i32,
    pub recovered_sample: Vec<String>,
    pub problems: Vec<String>,
    pub endpoint: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// The latest `limit` runs, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, trigger, dry_run, started_at, finished_at, outcome, since, until, covered_until, \
                pages, events_seen, events_recovered, recovered_sample, problems, endpoint, error \
           FROM reconcile_runs ORDER BY started_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
