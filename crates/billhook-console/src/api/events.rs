//! `GET /api/v1/events` (newest first, filtered, keyset-paged) and `GET /api/v1/events/{id}`
//! (the envelope, the payload, what applying it did).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row as _;

use super::{ApiError, cursor, limit};
use crate::State;
use crate::tokens::Caller;

/// The statuses an event can have.
const STATUSES: &[&str] = &["received", "failed", "dead", "applied", "ignored", "stale"];

#[derive(Debug, Deserialize)]
pub struct Filter {
    #[serde(rename = "type")]
    event_type: Option<String>,
    status: Option<String>,
    /// Received at or after.
    since: Option<DateTime<Utc>>,
    /// Received before.
    until: Option<DateTime<Utc>>,
    /// The Stripe object the event is about (`data.object.id`).
    object: Option<String>,
    /// One event by id.
    id: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

pub async fn list(
    _caller: Caller,
    state: web::Data<State>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter.into_inner();
    if let Some(status) = filter.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::BadRequest(format!(
            "status `{status}` is not one of {}",
            STATUSES.join(", ")
        )));
    }
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows = sqlx::query(
        "SELECT id, type, status, origin, livemode, object_id, created, received_at, attempts, \
                last_error, applied_at \
           FROM webhook_events \
          WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR status = $2) \
            AND ($3::timestamptz IS NULL OR received_at >= $3) \
            AND ($4::timestamptz IS NULL OR received_at < $4) \
            AND ($5::text IS NULL OR object_id = $5) AND ($6::text IS NULL OR id = $6) \
            AND ($7::timestamptz IS NULL OR (received_at, id) < ($7, $8)) \
          ORDER BY received_at DESC, id DESC LIMIT $9",
    )
    .bind(&filter.event_type)
    .bind(&filter.status)
    .bind(filter.since)
    .bind(filter.until)
    .bind(&filter.object)
    .bind(&filter.id)
    .bind(after.as_ref().map(|(at, _)| *at))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let (events, next) = cursor::page(&rows, limit, |row| {
        let id: String = row.try_get("id")?;
        let received_at: DateTime<Utc> = row.try_get("received_at")?;
        let value = json!({
            "id": id,
            "type": row.try_get::<String, _>("type")?,
            "status": row.try_get::<String, _>("status")?,
            "origin": row.try_get::<String, _>("origin")?,
            "livemode": row.try_get::<bool, _>("livemode")?,
            "object_id": row.try_get::<Option<String>, _>("object_id")?,
            "created": row.try_get::<DateTime<Utc>, _>("created")?,
            "received_at": received_at,
            "attempts": row.try_get::<i32, _>("attempts")?,
            "last_error": row.try_get::<Option<String>, _>("last_error")?,
            "applied_at": row.try_get::<Option<DateTime<Utc>>, _>("applied_at")?,
        });
        Ok((received_at, id, value))
    })?;
    Ok(HttpResponse::Ok().json(json!({ "events": events, "next_cursor": next })))
}

pub async fn show(
    _caller: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let row = sqlx::query(
        "SELECT id, type, api_version, livemode, account, object_id, origin, created, signed_at, \
                received_at, status, attempts, last_error, applied_at, secret_label, headers, body \
           FROM webhook_events WHERE id = $1",
    )
    .bind(&id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    let body: Vec<u8> = row.try_get("body")?;
    let payload = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    // The signature header proves nothing to a reader and is a replayable credential: kept
    // in the database, never shown.
    let mut headers: Value = row.try_get("headers")?;
    if let Some(map) = headers.as_object_mut() {
        map.remove("stripe-signature");
    }
    let audit = sqlx::query_scalar::<_, Value>(
        "SELECT jsonb_build_object('entity', entity, 'entity_id', entity_id, 'action', action, \
                'detail', detail, 'actor', actor, 'at', at) \
           FROM audit_log WHERE event_id = $1 ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&state.pool)
    .await?;
    let dead_letter = sqlx::query_scalar::<_, Value>(
        "SELECT jsonb_build_object('job_id', job_id, 'error', error, 'attempts', attempts, \
                'history', history, 'dead_at', dead_at, 'requeued_at', requeued_at, \
                'requeue_history', requeue_history) \
           FROM dead_letters WHERE event_id = $1 ORDER BY dead_at DESC LIMIT 1",
    )
    .bind(&id)
    .fetch_optional(&state.pool)
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "type": row.try_get::<String, _>("type")?,
        "api_version": row.try_get::<Option<String>, _>("api_version")?,
        "livemode": row.try_get::<bool, _>("livemode")?,
        "account": row.try_get::<Option<String>, _>("account")?,
        "object_id": row.try_get::<Option<String>, _>("object_id")?,
        "origin": row.try_get::<String, _>("origin")?,
        "created": row.try_get::<DateTime<Utc>, _>("created")?,
        "signed_at": row.try_get::<Option<DateTime<Utc>>, _>("signed_at")?,
        "received_at": row.try_get::<DateTime<Utc>, _>("received_at")?,
        "status": row.try_get::<String, _>("status")?,
        "attempts": row.try_get::<i32, _>("attempts")?,
        "last_error": row.try_get::<Option<String>, _>("last_error")?,
        "applied_at": row.try_get::<Option<DateTime<Utc>>, _>("applied_at")?,
        "secret_label": row.try_get::<Option<String>, _>("secret_label")?,
        "headers": headers,
        "payload": payload,
        "audit": audit,
        "dead_letter": dead_letter,
    })))
}
