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
    /// Events received in the last 24 hours by status: every status of
    /// [`events::STATUSES`](super::events::STATUSES) in that order, zeros included (`failed`:
    /// still being retried; `received`: not processed yet).
    pub outcomes_24h: Vec<Count>,
    /// `applied_at - received_at` of events applied in the last hour, seconds.
    pub lag_p50_seconds: Option<f64>,
    pub lag_p99_seconds: Option<f64>,
    /// Jobs due that no worker has fetched yet (pending, or failed and to be retried).
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
    /// Alert incidents open now, newest first ([`super::alerts::open`]).
    pub open_alerts: Vec<Value>,
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

/// Counts per minute (its start, Unix seconds) of `column` over the last 24 hours. Minutes
/// are computed from epoch seconds, not with `date_trunc` (which goes through the time zone for
/// every row), and filled in densely here, not by a join in SQL.
async fn counts_per_minute(
    pool: &PgPool,
    sql: &'static str,
) -> Result<std::collections::HashMap<i64, i64>, ApiError> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(sql).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

/// `found` completed to every event status, in [`events::STATUSES`](super::events::STATUSES)
/// order, 0 where none was found; a status that list does not know follows.
fn every_status(found: Vec<Count>) -> Vec<Count> {
    let known = super::events::STATUSES;
    let mut all: Vec<Count> = known
        .iter()
        .map(|status| Count {
            name: (*status).to_owned(),
            count: Overview::count(&found, status),
        })
        .collect();
    all.extend(
        found
            .into_iter()
            .filter(|c| !known.contains(&c.name.as_str())),
    );
    all
}

async fn per_minute(pool: &PgPool) -> Result<PerMinute, ApiError> {
    let (received, applied) = tokio::try_join!(
        counts_per_minute(
            pool,
            "SELECT (extract(epoch FROM received_at)::bigint / 60) * 60, count(*) FROM webhook_events \
              WHERE received_at >= now() - interval '24 hours' - interval '1 minute' GROUP BY 1",
        ),
        counts_per_minute(
            pool,
            "SELECT (extract(epoch FROM applied_at)::bigint / 60) * 60, count(*) FROM webhook_events \
              WHERE applied_at >= now() - interval '24 hours' - interval '1 minute' GROUP BY 1",
        ),
    )?;
    let now = Utc::now().timestamp();
    let last = now - now.rem_euclid(60);
    let minutes: Vec<i64> = (0..=1440).map(|n| last - (1440 - n) * 60).collect();
    Ok(PerMinute {
        received: minutes
            .iter()
            .map(|m| received.get(m).copied().unwrap_or(0))
            .collect(),
        applied: minutes
            .iter()
            .map(|m| applied.get(m).copied().unwrap_or(0))
            .collect(),
        minutes,
    })
}

/// p50 and p99 of `applied_at - received_at` over the events applied in the last hour.
async fn lag(pool: &PgPool) -> Result<(Option<f64>, Option<f64>), ApiError> {
    Ok(sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)) \
           FROM webhook_events WHERE applied_at >= now() - interval '1 hour'",
    )
    .fetch_one(pool)
    .await?)
}

pub async fn overview(pool: &PgPool) -> Result<Overview, ApiError> {
    // The reads of webhook_events, the larger ones, go together (each on a connection of its
    // own); the small ones follow.
    let (per_minute, found_outcomes, (lag_p50_seconds, lag_p99_seconds)) = tokio::try_join!(
        per_minute(pool),
        counts(
            pool,
            "SELECT status AS name, count(*) AS count FROM webhook_events \
              WHERE received_at >= now() - interval '24 hours' GROUP BY status ORDER BY status",
        ),
        lag(pool),
    )?;
    // Jobs no worker has fetched yet (pending, or failed and due for a retry), answered by
    // apalis's own partial index of the jobs it fetches. Fetched (`Queued`) and running jobs
    // are a worker's already.
    let jobs_waiting = scalar(
        pool,
        "SELECT count(*) FROM apalis.jobs \
          WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)) \
            AND run_at <= now()",
    )
    .await?;
    let oldest_job: Option<OldestJob> = sqlx::query_as(
        "SELECT job_type AS kind, extract(epoch FROM now() - run_at)::float8 AS waiting_seconds \
           FROM apalis.jobs \
          WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)) \
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
        per_minute,
        outcomes_24h: every_status(found_outcomes),
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
            "SELECT jsonb_build_object('id', id, 'trigger', trigger, 'dry_run', dry_run, \
                    'started_at', started_at, 'finished_at', finished_at, 'outcome', outcome, \
                    'events_recovered', events_recovered, 'error', error) \
               FROM reconcile_runs ORDER BY started_at DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?,
        rejected_24h,
        open_alerts: super::alerts::open(pool).await?,
    })
}
