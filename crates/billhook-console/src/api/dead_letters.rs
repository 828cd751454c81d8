//! `GET /api/v1/dead-letters` (newest first, filtered, keyset-paged) and
//! `POST /api/v1/dead-letters/requeue` (operate tokens only): the worker's own requeue, with
//! the token's label as who did it. A bulk requeue is asked with `"dry_run": true` first, which
//! answers how many it would touch.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row as _;

use super::{ApiError, cursor, limit};
use crate::State;
use crate::actions::RequeueRequest;
use crate::tokens::Caller;

#[derive(Debug, Deserialize)]
pub struct Filter {
    /// A job kind (process_event, send_email, notify_app, dunning_step).
    kind: Option<String>,
    /// Also those already requeued.
    #[serde(default)]
    all: bool,
    limit: Option<i64>,
    cursor: Option<String>,
}

pub async fn list(
    _caller: Caller,
    state: web::Data<State>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter.into_inner();
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows = sqlx::query(
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
    .fetch_all(&state.pool)
    .await?;
    let (letters, next) = cursor::page(&rows, limit, |row| {
        let job_id: String = row.try_get("job_id")?;
        let dead_at: DateTime<Utc> = row.try_get("dead_at")?;
        let value = json!({
            "job_id": job_id,
            "kind": row.try_get::<String, _>("kind")?,
            "queue": row.try_get::<String, _>("queue")?,
            "event_id": row.try_get::<Option<String>, _>("event_id")?,
            "error": row.try_get::<String, _>("error")?,
            "attempts": row.try_get::<i32, _>("attempts")?,
            "dead_at": dead_at,
            "requeued_at": row.try_get::<Option<DateTime<Utc>>, _>("requeued_at")?,
            "requeue_history": row.try_get::<Value, _>("requeue_history")?,
        });
        Ok((dead_at, job_id, value))
    })?;
    Ok(HttpResponse::Ok().json(json!({ "dead_letters": letters, "next_cursor": next })))
}

pub async fn requeue(
    caller: Caller,
    state: web::Data<State>,
    request: web::Json<RequeueRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.may_operate()?;
    let request = request.into_inner();
    if !request.dry_run && request.reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "a requeue needs a reason (\"reason\": \"…\"); ask with \"dry_run\": true first to see what it touches"
                .to_owned(),
        ));
    }
    let done = state
        .actions
        .requeue(&request, &caller.label)
        .await
        .map_err(|e| ApiError::Internal(format!("requeue failed; nothing was changed: {e:#}")))?;
    if !done.dry_run {
        tracing::info!(by = %caller.label, count = done.count, reason = %request.reason,
            "console: dead letters requeued");
    }
    Ok(HttpResponse::Ok().json(done))
}
