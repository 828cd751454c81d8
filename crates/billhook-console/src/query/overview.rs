//! The overview: how Billhook is doing now. Every figure is bounded by time or by an index,
//! so the page answers as fast with a million events as with ten.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::api::ApiError;

/// Events received and applied per minute over the last 24 hours: one entry per minute,
/// oldest first, as the chart draws them.
#[derive(Debug, Serialize)]
pub struct PerMinute {
    /// Each minute's start, Unix seconds.
    pub minutes: Vec<i64>,
    pub received: Vec<i64>,
    pub applied: Vec<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Count {
    pub name: String,
    pub count: i64,
}

/// The job that has waited longest for a worker.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OldestJob {
    pub kind: String,
    pub waiting_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Overview {
    pub per_minute: PerMinute,
    /// Events received in the last 24 hours by status.
    pub outcomes_24h: Vec<Count>,
    /// `applied_at - received_at` of events applied in the last hour, seconds.
    pub lag_p50_seconds: Option<f64>,
    pub lag_p99_seconds: Option<f64>,
    /// Jobs due and waiting (pending, or failed and to be retried).
    pub jobs_waiting: i64,
    pub oldest_job: Option<OldestJob>,
    /// Dead letters not yet requeued, by job kind.
    pub dead_letters: Vec<Count>,
    /// Emails by status among pending and dead; `emails_failing` are pending with a failed try.
    pub emails: Vec<Count>,
    pub emails_failing: i64,
    pub notices: Vec<Count>,
    pub notices_failing: i64,
    pub dunning_active: i64,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Reconciliation's last run, when there has been one.
    pub reconcile_last_run: Option<Value>,
    /// Rejected deliveries (bad signature, old timestamp, …) in the last 24 hours, by reason.
    pub rejected_24h: Vec<Count>,
}

impl Overview {
    /// The per-hour totals of the chart, for a page read without JavaScript.
    pub fn per_hour(&self) -> Vec<(String, i64, i64)> {
        let mut hours: Vec<(String, i64, i64)> = Vec::new();
        let m = &self.per_minute;
        for ((minute, received), applied) in m.minutes.iter().zip(&m.received).zip(&m.applied) {
            let hour = DateTime::from_timestamp(minute - minute.rem_euclid(3600), 0)
                .map(|h| h.format("%Y-%m-%d %H:00").to_string())
                .unwrap_or_default();
            match hours.last_mut() {
                Some(last) if last.0 == hour => {
                    last.1 += received;
                    last.2 += applied;
                }
                _ => hours.push((hour, *received, *applied)),
            }
        }
        hours
    }

    /// The figure for `name` in `counts`, 0 when absent.
    pub fn count(counts: &[Count], name: &str) -> i64 {
        counts
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.count)
    }
}

async fn counts(pool: &PgPool, sql: &'static str) -> Result<Vec<Count>, ApiError> {
    Ok(sqlx::query_as(sql).fetch_all(pool).await?)
}

async fn scalar(pool: &PgPool, sql: &'static str) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

async fn per_minute(pool: &PgPool) -> Result<PerMinute, ApiError> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "WITH minutes AS ( \
             SELECT generate_series(date_trunc('minute', now() - interval '24 hours'), \
                                    date_trunc('minute', now()), interval '1 minute') AS m), \
         received AS ( \
             SELECT date_trunc('minute', received_at) AS m, count(*) AS n FROM webhook_events \
              WHERE received_at >= date_trunc('minute', now() - interval '24 hours') GROUP BY 1), \
         applied AS ( \
             SELECT date_trunc('minute', applied_at) AS m, count(*) AS n FROM webhook_events \
              WHERE applied_at >= date_trunc('minute', now() - interval '24 hours') GROUP BY 1) \
         SELECT extract(epoch FROM minutes.m)::bigint, coalesce(received.n, 0), \
                coalesce(applied.n, 0) \
           FROM minutes LEFT JOIN received USING (m) LEFT JOIN applied USING (m) ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut series = PerMinute {
        minutes: Vec::with_capacity(rows.len()),
        received: Vec::with_capacity(rows.len()),
        applied: Vec::with_capacity(rows.len()),
    };
    for (minute, received, applied) in rows {
        series.minutes.push(minute);
        series.received.push(received);
        series.applied.push(applied);
    }
    Ok(series)
}

pub async fn overview(pool: &PgPool) -> Result<Overview, ApiError> {
    let (lag_p50_seconds, lag_p99_seconds): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)) \
           FROM webhook_events WHERE applied_at >= now() - interval '1 hour'",
    )
    .fetch_one(pool)
    .await?;
    let jobs_waiting = scalar(
        pool,
        "SELECT count(*) FROM apalis.jobs \
          WHERE (status IN ('Pending', 'Queued') OR (status = 'Failed' AND attempts < max_attempts)) \
            AND run_at <= now()",
    )
    .await?;
    let oldest_job: Option<OldestJob> = sqlx::query_as(
        "SELECT job_type AS kind, extract(epoch FROM now() - run_at)::float8 AS waiting_seconds \
           FROM apalis.jobs \
          WHERE (status IN ('Pending', 'Queued') OR (status = 'Failed' AND attempts < max_attempts)) \
            AND run_at <= now() \
          ORDER BY run_at LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let rejected_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('rejected_deliveries') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let rejected_24h = if rejected_exists {
        counts(
            pool,
            "SELECT reason AS name, sum(count)::bigint AS count FROM rejected_deliveries \
              WHERE minute >= now() - interval '24 hours' GROUP BY reason ORDER BY reason",
        )
        .await?
    } else {
        Vec::new()
    };
    Ok(Overview {
        per_minute: per_minute(pool).await?,
        outcomes_24h: counts(
            pool,
            "SELECT status AS name, count(*) AS count FROM webhook_events \
              WHERE received_at >= now() - interval '24 hours' GROUP BY status ORDER BY status",
        )
        .await?,
        lag_p50_seconds,
        lag_p99_seconds,
        jobs_waiting,
        oldest_job,
        dead_letters: counts(
            pool,
            "SELECT kind AS name, count(*) AS count FROM dead_letters \
              WHERE requeued_at IS NULL GROUP BY kind ORDER BY kind",
        )
        .await?,
        emails: counts(
            pool,
            "SELECT status AS name, count(*) AS count FROM emails \
              WHERE status IN ('pending', 'dead') GROUP BY status ORDER BY status",
        )
        .await?,
        emails_failing: scalar(
            pool,
            "SELECT count(*) FROM emails WHERE status = 'pending' AND attempts > 0",
        )
        .await?,
        notices: counts(
            pool,
            "SELECT status AS name, count(*) AS count FROM app_notifications \
              WHERE status IN ('pending', 'dead') GROUP BY status ORDER BY status",
        )
        .await?,
        notices_failing: scalar(
            pool,
            "SELECT count(*) FROM app_notifications WHERE status = 'pending' AND attempts > 0",
        )
        .await?,
        dunning_active: scalar(
            pool,
            "SELECT count(*) FROM dunning_runs WHERE state = 'active'",
        )
        .await?,
        last_event_at: sqlx::query_scalar("SELECT max(received_at) FROM webhook_events")
            .fetch_one(pool)
            .await?,
        reconcile_last_run: sqlx::query_scalar(
            "SELECT jsonb_build_object('id', id, 'trigger', trigger, 'started_at', started_at, \
                    'finished_at', finished_at, 'outcome', outcome, \
                    'events_recovered', events_recovered, 'error', error) \
               FROM reconcile_runs ORDER BY started_at DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?,
        rejected_24h,
    })
}
