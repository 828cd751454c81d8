//! Events: the list (newest first, filtered, keyset-paged) and one event with everything
//! applying it did: its attempts, audit entries, dead letter, emails, notices, ledger entries,
//! orders and dunning runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;

use super::Page;
use crate::api::{ApiError, cursor, limit};

/// The statuses an event can have.
pub const STATUSES: &[&str] = &["received", "failed", "dead", "applied", "ignored", "stale"];

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    #[serde(rename = "type", default, deserialize_with = "super::blank_is_none")]
    pub event_type: Option<String>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub status: Option<String>,
    /// Received at or after.
    #[serde(default, deserialize_with = "super::blank_is_none_time")]
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    #[serde(default, deserialize_with = "super::blank_is_none_time")]
    pub until: Option<DateTime<Utc>>,
    /// The Stripe object the event is about (`data.object.id`).
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub object: Option<String>,
    /// The Stripe customer the event concerns.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub customer: Option<String>,
    /// One event by id.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub id: Option<String>,
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub status: String,
    pub origin: String,
    pub livemode: bool,
    pub object_id: Option<String>,
    pub customer_id: Option<String>,
    pub created: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub applied_at: Option<DateTime<Utc>>,
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<EventRow>, ApiError> {
    if let Some(status) = filter.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::BadRequest(format!(
            "status `{status}` is not one of {}",
            STATUSES.join(", ")
        )));
    }
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, type, status, origin, livemode, object_id, customer_id, created, received_at, \
                attempts, last_error, applied_at \
           FROM webhook_events \
          WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR status = $2) \
            AND ($3::timestamptz IS NULL OR received_at >= $3) \
            AND ($4::timestamptz IS NULL OR received_at < $4) \
            AND ($5::text IS NULL OR object_id = $5) AND ($6::text IS NULL OR id = $6) \
            AND ($7::text IS NULL OR customer_id = $7) \
            AND ($8::timestamptz IS NULL OR (received_at, id) < ($8, $9)) \
          ORDER BY received_at DESC, id DESC LIMIT $10",
    )
    .bind(&filter.event_type)
    .bind(&filter.status)
    .bind(filter.since)
    .bind(filter.until)
    .bind(&filter.object)
    .bind(&filter.id)
    .bind(&filter.customer)
    .bind(after.as_ref().map(|(at, _)| *at))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(Page::from_rows(rows, limit, |e| (e.received_at, &e.id)))
}

/// One event and what applying it did.
#[derive(Debug, Serialize)]
pub struct EventDetail {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub api_version: Option<String>,
    pub livemode: bool,
    pub account: Option<String>,
    pub object_id: Option<String>,
    pub customer_id: Option<String>,
    pub origin: String,
    pub created: DateTime<Utc>,
    pub signed_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub applied_at: Option<DateTime<Utc>>,
    /// Which configured webhook secret verified it (none for events recovered from the API).
    pub secret_label: Option<String>,
    /// The stored request headers, without `stripe-signature`.
    pub headers: Value,
    /// The payload as JSON; `null` once retention removed it (`pruned_at`).
    pub payload: Value,
    /// When data retention cleared the body and headers (BILLHOOK_EVENT_RETENTION).
    pub pruned_at: Option<DateTime<Utc>>,
    /// Every failed attempt, oldest first.
    pub failures: Vec<Value>,
    pub audit: Vec<Value>,
    pub dead_letter: Option<Value>,
    pub emails: Vec<Value>,
    pub notices: Vec<Value>,
    pub ledger_entries: Vec<Value>,
    pub orders: Vec<Value>,
    pub dunning_runs: Vec<Value>,
}

impl EventDetail {
    /// Whether a replay can be asked for: the event's job is dead-lettered and not requeued.
    pub fn replayable(&self) -> bool {
        self.dead_letter
            .as_ref()
            .is_some_and(|d| d["requeued_at"].is_null())
    }

    /// The payload as indented JSON, for reading.
    pub fn payload_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.payload).unwrap_or_default()
    }

    /// The headers as indented JSON.
    pub fn headers_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.headers).unwrap_or_default()
    }
}

#[derive(sqlx::FromRow)]
struct Stored {
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    api_version: Option<String>,
    livemode: bool,
    account: Option<String>,
    object_id: Option<String>,
    customer_id: Option<String>,
    origin: String,
    created: DateTime<Utc>,
    signed_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    applied_at: Option<DateTime<Utc>>,
    secret_label: Option<String>,
    headers: Value,
    body: Vec<u8>,
    pruned_at: Option<DateTime<Utc>>,
}

/// Related rows as JSON objects, each query bound to the event id as `$1`.
async fn related(pool: &PgPool, sql: &'static str, id: &str) -> Result<Vec<Value>, ApiError> {
    Ok(sqlx::query_scalar::<_, Value>(sql)
        .bind(id)
        .fetch_all(pool)
        .await?)
}

pub async fn show(pool: &PgPool, id: &str) -> Result<EventDetail, ApiError> {
    let stored: Stored = sqlx::query_as(
        "SELECT id, type, api_version, livemode, account, object_id, customer_id, origin, created, \
                signed_at, received_at, status, attempts, last_error, applied_at, secret_label, \
                headers, body, pruned_at \
           FROM webhook_events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    let payload = if stored.pruned_at.is_some() {
        Value::Null
    } else {
        serde_json::from_slice::<Value>(&stored.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&stored.body).into_owned()))
    };
    // The signature header proves nothing to a reader and is a replayable credential: kept
    // in the database, never shown.
    let mut headers = stored.headers;
    if let Some(map) = headers.as_object_mut() {
        map.remove("stripe-signature");
    }
    let failures = related(
        pool,
        "SELECT jsonb_build_object('attempt', attempt, 'error', error, 'retryable', retryable, \
                'failed_at', failed_at, 'job_id', job_id) \
           FROM job_failures WHERE event_id = $1 ORDER BY id",
        id,
    )
    .await?;
    let audit = related(
        pool,
        "SELECT jsonb_build_object('entity', entity, 'entity_id', entity_id, 'action', action, \
                'detail', detail, 'actor', actor, 'at', at) \
           FROM audit_log WHERE event_id = $1 ORDER BY id",
        id,
    )
    .await?;
    let dead_letter = related(
        pool,
        "SELECT jsonb_build_object('job_id', job_id, 'kind', kind, 'error', error, \
                'attempts', attempts, 'history', history, 'dead_at', dead_at, \
                'requeued_at', requeued_at, 'requeue_history', requeue_history) \
           FROM dead_letters WHERE event_id = $1 AND kind = 'process_event' \
          ORDER BY dead_at DESC LIMIT 1",
        id,
    )
    .await?
    .pop();
    let emails = related(
        pool,
        "SELECT jsonb_build_object('id', id, 'template', template, 'recipient', recipient, \
                'status', status, 'attempts', attempts, 'created_at', created_at, 'sent_at', sent_at) \
           FROM emails WHERE event_id = $1 ORDER BY created_at, id",
        id,
    )
    .await?;
    let notices = related(
        pool,
        "SELECT jsonb_build_object('id', id, 'type', type, 'status', status, 'attempts', attempts, \
                'last_status', last_status, 'created_at', created_at, 'delivered_at', delivered_at) \
           FROM app_notifications WHERE event_id = $1 ORDER BY created_at, id",
        id,
    )
    .await?;
    let ledger_entries = related(
        pool,
        "SELECT jsonb_build_object('id', id, 'customer_id', customer_id, 'kind', kind, \
                'amount', amount, 'unit', unit, 'order_id', order_id, 'created_at', created_at) \
           FROM ledger_entries WHERE event_id = $1 ORDER BY id",
        id,
    )
    .await?;
    let orders = related(
        pool,
        "SELECT jsonb_build_object('id', o.id, 'reference', o.reference, 'status', o.status, \
                'amount', o.amount, 'currency', o.currency, 'customer_id', o.customer_id) \
           FROM orders o \
          WHERE o.id IN (SELECT entity_id FROM audit_log WHERE event_id = $1 AND entity = 'order') \
          ORDER BY o.created_at, o.id",
        id,
    )
    .await?;
    let dunning_runs = related(
        pool,
        "SELECT jsonb_build_object('id', r.id, 'invoice_id', r.invoice_id, 'state', r.state, \
                'steps_done', r.steps_done, 'started_at', r.started_at, \
                'next_step_at', r.next_step_at) \
           FROM dunning_runs r \
          WHERE r.id IN (SELECT id FROM dunning_runs WHERE event_id = $1 \
                         UNION SELECT entity_id FROM audit_log \
                                WHERE event_id = $1 AND entity = 'dunning_run') \
          ORDER BY r.started_at, r.id",
        id,
    )
    .await?;
    Ok(EventDetail {
        id: stored.id,
        event_type: stored.event_type,
        api_version: stored.api_version,
        livemode: stored.livemode,
        account: stored.account,
        object_id: stored.object_id,
        customer_id: stored.customer_id,
        origin: stored.origin,
        created: stored.created,
        signed_at: stored.signed_at,
        received_at: stored.received_at,
        status: stored.status,
        attempts: stored.attempts,
        last_error: stored.last_error,
        applied_at: stored.applied_at,
        secret_label: stored.secret_label,
        headers,
        payload,
        pruned_at: stored.pruned_at,
        failures,
        audit,
        dead_letter,
        emails,
        notices,
        ledger_entries,
        orders,
        dunning_runs,
    })
}
