//! The application's word on an order: delivered (`fulfilled`) or not (`fulfillment_failed`).
//! One function for the console's API and `billhook-worker orders mark`. Only a paid order,
//! or one already marked, can be marked; marking it again with the status it has changes
//! nothing; every change is in the audit log with who asked.

use billhook_console::{MarkError, MarkOrder, MarkedOrder};
use sqlx::PgPool;

use super::audit;
use super::order_status::OrderStatus;

/// The statuses an order may be marked from.
const MARKABLE: [OrderStatus; 3] = [
    OrderStatus::Paid,
    OrderStatus::Fulfilled,
    OrderStatus::FulfillmentFailed,
];

pub async fn mark(
    pool: &PgPool,
    key: &str,
    request: &MarkOrder,
    by: &str,
) -> Result<MarkedOrder, MarkError> {
    let to = match OrderStatus::parse(&request.status) {
        Some(s @ (OrderStatus::Fulfilled | OrderStatus::FulfillmentFailed)) => s,
        _ => {
            return Err(MarkError::Refused(format!(
                "an order is marked `fulfilled` or `fulfillment_failed`, not `{}`",
                request.status
            )));
        }
    };
    let failed = |e: sqlx::Error| MarkError::Failed(e.into());
    let mut tx = pool.begin().await.map_err(failed)?;
    let row: Option<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT id, reference, status FROM orders WHERE id = $1 OR reference = $1 \
          ORDER BY (id = $1) DESC LIMIT 1 FOR UPDATE",
    )
    .bind(key)
    .fetch_optional(&mut *tx)
    .await
    .map_err(failed)?;
    let (id, reference, from) = row.ok_or(MarkError::NotFound)?;
    let marked = |changed| MarkedOrder {
        id: id.clone(),
        reference: reference.clone(),
        from: from.clone(),
        status: to.as_str().to_owned(),
        changed,
    };
    if from == to.as_str() {
        return Ok(marked(false));
    }
    if !OrderStatus::parse(&from).is_some_and(|s| MARKABLE.contains(&s)) {
        return Err(MarkError::Refused(format!(
            "order {id} is {from}: only a paid order (or one already marked) can be marked {}",
            to.as_str()
        )));
    }
    sqlx::query("UPDATE orders SET status = $2, updated_at = now() WHERE id = $1")
        .bind(&id)
        .bind(to.as_str())
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    audit::record_by(
        &mut tx,
        by,
        "order",
        &id,
        to.as_str(),
        serde_json::json!({ "from": from, "to": to.as_str(), "reason": request.reason }),
    )
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    tracing::info!(order = %id, from = %from, to = to.as_str(), by, "order marked");
    Ok(marked(true))
}
