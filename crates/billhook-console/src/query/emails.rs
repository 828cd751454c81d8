//! Emails: the list, and one email with its data, attempts and dead letter. Never the SMTP
//! settings.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{Keyed, Page, json_row, json_rows, keyed_page, one_of};
use crate::api::{ApiError, cursor, limit};

pub const STATUSES: &[&str] = &["pending", "sent", "skipped", "dead"];

/// The worker's templates (`billhook_worker::email::Template::ALL`, which a test holds this
/// list to).
pub const TEMPLATES: &[&str] = &[
    "order_confirmation",
    "payment_receipt",
    "payment_failed",
    "refund_confirmation",
    "trial_ending",
    "dunning_reminder",
    "final_warning",
    "subscription_cancelled",
    "alert",
    "daily_summary",
];

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub template: Option<String>,
    /// Exact address, any case.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub recipient: Option<String>,
    /// The Stripe event that caused it.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub event: Option<String>,
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub cursor: Option<String>,
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<Value>, ApiError> {
    one_of("status", filter.status.as_deref(), STATUSES)?;
    one_of("template", filter.template.as_deref(), TEMPLATES)?;
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows: Vec<Keyed> = sqlx::query_as(
        "SELECT created_at, id, jsonb_build_object('id', id, 'template', template, \
                'recipient', recipient, 'subject', subject, 'status', status, \
                'attempts', attempts, 'last_error', last_error, 'event_id', event_id, \
                'created_at', created_at, 'sent_at', sent_at) \
           FROM emails \
          WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR template = $2) \
            AND ($3::text IS NULL OR lower(recipient) = lower($3)) \
            AND ($4::text IS NULL OR event_id = $4) \
            AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6)) \
          ORDER BY created_at DESC, id DESC LIMIT $7",
    )
    .bind(&filter.status)
    .bind(&filter.template)
    .bind(&filter.recipient)
    .bind(&filter.event)
    .bind(after.as_ref().map(|(at, _)| *at))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(keyed_page(rows, limit))
}

pub async fn show(pool: &PgPool, id: &str) -> Result<Value, ApiError> {
    let email = json_row(
        pool,
        "SELECT jsonb_build_object('id', id, 'template', template, 'source', source, \
                'recipient', recipient, 'subject', subject, 'data', data, 'event_id', event_id, \
                'status', status, 'attempts', attempts, 'last_error', last_error, \
                'message_id', message_id, 'created_at', created_at, 'sent_at', sent_at) \
           FROM emails WHERE id = $1",
        id,
        "email",
    )
    .await?;
    let dead_letter = json_rows(
        pool,
        "SELECT jsonb_build_object('job_id', job_id, 'error', error, 'attempts', attempts, \
                'history', history, 'dead_at', dead_at, 'requeued_at', requeued_at) \
           FROM dead_letters WHERE kind = 'send_email' AND argument->>'email_id' = $1 \
          ORDER BY dead_at DESC LIMIT 1",
        id,
    )
    .await?
    .pop();
    Ok(json!({ "email": email, "dead_letter": dead_letter }))
}
