//! `GET /api/v1/events` (newest first, filtered, keyset-paged), `GET /api/v1/events/{id}`
//! (the envelope, the payload, what applying it did) and `POST /api/v1/events/{id}/replay`
//! (operate tokens only: requeues the event's dead-lettered job).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::State;
use crate::actions::RequeueRequest;
use crate::query::events::{self, Filter};
use crate::tokens::Caller;

pub async fn list(
    _caller: Caller,
    state: web::Data<State>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let page = events::list(&state.pool, &filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "events": page.items, "next_cursor": page.next_cursor })))
}

pub async fn show(
    _caller: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(events::show(&state.pool, &id).await?))
}

#[derive(Debug, Deserialize)]
pub struct Replay {
    #[serde(default)]
    pub reason: String,
}

pub async fn replay(
    caller: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
    body: web::Json<Replay>,
) -> Result<HttpResponse, ApiError> {
    caller.may_operate()?;
    let done = replay_event(&state, &id, &body.reason, &caller.label).await?;
    Ok(HttpResponse::Ok().json(done))
}

/// Replays an event whose job was dead-lettered: the worker's own requeue of that dead letter,
/// so the event is applied once more from the start (effects already done are not repeated:
/// the handlers are idempotent). Refused, changing nothing, for an event that did not fail.
pub async fn replay_event(
    state: &State,
    id: &str,
    reason: &str,
    by: &str,
) -> Result<crate::Requeued, ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "a replay needs a reason (\"reason\": \"…\")".to_owned(),
        ));
    }
    let event = events::show(&state.pool, id).await?;
    if !event.replayable() {
        return Err(ApiError::Conflict(format!(
            "event {id} is {}: only an event whose processing was dead-lettered can be replayed{}",
            event.status,
            if event.status == "failed" {
                " (this one is still being retried)"
            } else {
                ""
            }
        )));
    }
    let request = RequeueRequest {
        event_ids: vec![id.to_owned()],
        kind: None,
        reason: reason.to_owned(),
        ..RequeueRequest::default()
    };
    let done =
        state.actions.requeue(&request, by).await.map_err(|e| {
            ApiError::Internal(format!("replay failed; nothing was changed: {e:#}"))
        })?;
    tracing::info!(
        by,
        event_id = id,
        count = done.count,
        reason,
        "console: event replayed"
    );
    Ok(done)
}
