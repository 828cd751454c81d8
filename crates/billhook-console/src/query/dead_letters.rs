//! Dead letters of every kind (events, emails, notices, dunning steps): the list, newest first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;

use super::Page;
use crate::api::{ApiError, cursor, limit};

/// The job kinds that can be dead-lettered.
pub const KINDS: &[&str] = &[
    "process_event",
    "send_email",
    "notify_app",
    "dunning_step",
    "post_alert",
];

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    /// A job kind (process_event, send_email, notify_app, dunning_step, post_alert).
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub kind: Option<String>,
    /// Also those already requeued.
    #[serde(default)]
    pub all: bool,
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeadLetterRow {
    pub job_id: String,
    pub kind: String,
    pub queue: String,
    pub event_id: Option<String>,
    pub error: String,
    pub attempts: i32,
    pub dead_at: DateTime<Utc>,
    pub requeued_at: Option<DateTime<Utc>>,
    pub requeue_history: Value,
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<DeadLetterRow>, ApiError> {
    if let Some(kind) = filter.kind.as_deref().filter(|k| !KINDS.contains(k)) {
        return Err(ApiError::BadRequest(format!(
            "kind `{kind}` is not one of {}",
            KINDS.join(", ")
        )));
    }
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows: Vec<DeadLetterRow> = sqlx::query_as(
        "SELECT job_id, kind, queue, event_id, error, attempts, dead_at, requeued_at, \
                requeue_history \
           FROM dead_letters \
          WHERE ($1 OR requeued_at IS NULL) AND ($2::text IS NULL OR kind = $2) \
            AND ($3::timestamptz IS NULL OR (dead_at, job_id) < ($3, $4)) \
          ORDER BY dead_at DESC, job_id DESC LIMIT $5",
    )
    .bind(filter.all)
    .bind(&filter.kind)
    .bind(after.as_ref().map(|(at, _)| *at))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(Page::from_rows(rows, limit, |d| (d.dead_at, &d.job_id)))
}
