//! Notices to the host application: the list, and one notice with its body, answers and
//! dead letter.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{Keyed, Page, json_row, json_rows, keyed_page, one_of};
use crate::api::{ApiError, cursor, limit};

pub const STATUSES: &[&str] = &["pending", "delivered", "skipped", "dead"];

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub status: Option<String>,
    /// A notice type, e.g. `subscription.past_due`.
    #[serde(rename = "type", default, deserialize_with = "super::blank_is_none")]
    pub notice_type: Option<String>,
    /// The Stripe event that caused it.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub event: Option<String>,
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub cursor: Option<String>,
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<Value>, ApiError> {
    one_of("status", filter.status.as_deref(), STATUSES)?;
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows: Vec<Keyed> = sqlx::query_as(
        "SELECT created_at, id, jsonb_build_object('id', id, 'type', type, 'status', status, \
                'attempts', attempts, 'last_status', last_status, 'last_error', last_error, \
                'event_id', event_id, 'created_at', created_at, 'delivered_at', delivered_at) \
           FROM app_notifications \
          WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR type = $2) \
            AND ($3::text IS NULL OR event_id = $3) \
            AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
          ORDER BY created_at DESC, id DESC LIMIT $6",
    )
    .bind(&filter.status)
    .bind(&filter.notice_type)
    .bind(&filter.event)
    .bind(after.as_ref().map(|(at, _)| *at))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(keyed_page(rows, limit))
}

pub async fn show(pool: &PgPool, id: &str) -> Result<Value, ApiError> {
    let notice = json_row(
        pool,
        "SELECT jsonb_build_object('id', id, 'type', type, 'dedupe_key', dedupe_key, \
                'event_id', event_id, 'body', body, 'status', status, 'attempts', attempts, \
                'last_status', last_status, 'last_error', last_error, \
                'created_at', created_at, 'delivered_at', delivered_at) \
           FROM app_notifications WHERE id = $1",
        id,
        "notice",
    )
    .await?;
    let dead_letter = json_rows(
        pool,
        "SELECT jsonb_build_object('job_id', job_id, 'error', error, 'attempts', attempts, \
                'history', history, 'dead_at', dead_at, 'requeued_at', requeued_at) \
           FROM dead_letters WHERE kind = 'notify_app' AND argument->>'notification_id' = $1 \
          ORDER BY dead_at DESC LIMIT 1",
        id,
    )
    .await?
    .pop();
    Ok(json!({ "notice": notice, "dead_letter": dead_letter }))
}
