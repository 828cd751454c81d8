//! `GET /api/v1/dead-letters` (newest first, filtered, keyset-paged) and
//! `POST /api/v1/dead-letters/requeue` (operate tokens only): the worker's own requeue, with
//! the token's label as who did it. A bulk requeue is asked with `"dry_run": true` first, which
//! answers how many it would touch.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiError;
use crate::State;
use crate::actions::RequeueRequest;
use crate::query::dead_letters::{self, Filter};
use crate::tokens::Caller;

pub async fn list(
    _caller: Caller,
    state: web::Data<State>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let page = dead_letters::list(&state.pool, &filter).await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "dead_letters": page.items, "next_cursor": page.next_cursor })))
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
