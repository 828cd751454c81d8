//! Alert incidents: the list, one with its history and messages, and acknowledging one
//! (`operate` tokens only) through the code of `billhook-worker alerts ack`.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiError;
use crate::State;
use crate::actions::AckError;
use crate::query::alerts;
use crate::tokens::Caller;

pub async fn list(
    _: Caller,
    state: web::Data<State>,
    filter: web::Query<alerts::Filter>,
) -> Result<HttpResponse, ApiError> {
    let page = alerts::list(&state.pool, &filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "alerts": page.items, "next_cursor": page.next_cursor })))
}

pub async fn show(
    _: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(alerts::show(&state.pool, &id).await?))
}

pub async fn acknowledge(
    caller: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.may_operate()?;
    let changed = acknowledge_alert(&state, &id, &caller.label).await?;
    Ok(HttpResponse::Ok().json(json!({ "id": *id, "acknowledged": true, "changed": changed })))
}

/// Acknowledges through the worker's code, mapping its refusals to 404 and 409.
pub async fn acknowledge_alert(state: &State, id: &str, by: &str) -> Result<bool, ApiError> {
    state
        .actions
        .acknowledge_alert(id, by)
        .await
        .map_err(|e| match e {
            AckError::NotFound => ApiError::NotFound(format!("no incident {id}")),
            AckError::Resolved => ApiError::Conflict(format!("incident {id} is resolved")),
            AckError::Failed(e) => {
                ApiError::Internal(format!("acknowledging failed; nothing was changed: {e:#}"))
            }
        })
}
