//! `POST /api/v1/orders/{key}/fulfillment` (operate tokens only): the host application says it
//! delivered an order (`fulfilled`) or could not (`fulfillment_failed`), through the code of
//! `billhook-worker orders mark`.

use actix_web::{HttpResponse, web};

use super::ApiError;
use crate::State;
use crate::actions::{FULFILMENT_STATUSES, MarkError, MarkOrder, MarkedOrder};
use crate::tokens::Caller;

pub async fn mark(
    caller: Caller,
    state: web::Data<State>,
    key: web::Path<String>,
    body: web::Json<MarkOrder>,
) -> Result<HttpResponse, ApiError> {
    caller.may_operate()?;
    let request = body.into_inner();
    if !FULFILMENT_STATUSES.contains(&request.status.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "status `{}` is not one of {}",
            request.status,
            FULFILMENT_STATUSES.join(", ")
        )));
    }
    let marked = mark_order(&state, &key, &request, &caller.label).await?;
    Ok(HttpResponse::Ok().json(marked))
}

/// Marks an order through the worker's code, mapping its refusals to 404 and 409.
pub async fn mark_order(
    state: &State,
    key: &str,
    request: &MarkOrder,
    by: &str,
) -> Result<MarkedOrder, ApiError> {
    state
        .actions
        .mark_order(key, request, by)
        .await
        .map_err(|e| match e {
            MarkError::NotFound => ApiError::NotFound(format!("no order {key}")),
            MarkError::Refused(why) => ApiError::Conflict(why),
            MarkError::Failed(e) => ApiError::Internal(format!(
                "marking the order failed; nothing was changed: {e:#}"
            )),
        })
}
