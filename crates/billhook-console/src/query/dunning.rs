//! Dunning runs: the list, and one run with its steps, its emails and its audit entries.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{Keyed, Page, json_row, json_rows, keyed_page, one_of};
use crate::api::{ApiError, cursor, limit};

/// The states a run can be in.
pub const STATES: &[&str] = &["active", "recovered", "canceled", "stopped"];

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub subscription: Option<String>,
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub cursor: Option<String>,
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<Value>, ApiError> {
    one_of("state", filter.state.as_deref(), STATES)?;
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows: Vec<Keyed> = sqlx::query_as(
        "SELECT started_at, id, jsonb_build_object('id', id, 'state', state, \
                'invoice_id', invoice_id, 'subscription_id', subscription_id, \
                'customer_id', customer_id, 'steps_done', steps_done, 'started_at', started_at, \
                'next_step_at', next_step_at, 'stop_reason', stop_reason) \
           FROM dunning_runs \
          WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR customer_id = $2) \
            AND ($3::text IS NULL OR subscription_id = $3) \
            AND ($4::timestamptz IS NULL OR (started_at, id) < ($4, $5)) \
          ORDER BY started_at DESC, id DESC LIMIT $6",
    )
    .bind(&filter.state)
    .bind(&filter.customer)
    .bind(&filter.subscription)
    .bind(after.as_ref().map(|(at, _)| *at))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(keyed_page(rows, limit))
}

pub async fn show(pool: &PgPool, id: &str) -> Result<Value, ApiError> {
    let run = json_row(
        pool,
        "SELECT jsonb_build_object('id', id, 'state', state, 'invoice_id', invoice_id, \
                'subscription_id', subscription_id, 'customer_id', customer_id, \
                'steps_done', steps_done, 'started_at', started_at, 'next_step_at', next_step_at, \
                'stop_reason', stop_reason, 'event_id', event_id, 'updated_at', updated_at) \
           FROM dunning_runs WHERE id = $1",
        id,
        "dunning run",
    )
    .await?;
    let steps = json_rows(
        pool,
        "SELECT step FROM dunning_runs, jsonb_array_elements(history) AS step WHERE id = $1",
        id,
    )
    .await?;
    // A step's email has the source `<run id>:<step>` (a prefix range, which `_` in the id
    // cannot widen as in LIKE, and which the source index serves under a generic plan too).
    // The cancellation's email has the subscription as its source, shared with Stripe's own
    // `customer.subscription.deleted` so that one email goes out: it is the run's when the run
    // ended `canceled`, a state only its cancel step sets.
    let emails = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'template', template, 'recipient', recipient, \
                'subject', subject, 'status', status, 'source', source, \
                'created_at', created_at, 'sent_at', sent_at) \
           FROM emails \
          WHERE (source ~>=~ ($1 || ':') AND source ~<~ ($1 || ';')) \
             OR (template = 'subscription_cancelled' AND source = \
                   (SELECT subscription_id FROM dunning_runs WHERE id = $1 AND state = 'canceled')) \
          ORDER BY created_at, id",
        id,
    )
    .await?;
    // The run's own entries, and the subscription's cancellation by its cancel step.
    let audit = json_rows(
        pool,
        "SELECT jsonb_build_object('entity', entity, 'entity_id', entity_id, 'action', action, \
                'detail', detail, 'actor', actor, 'event_id', event_id, 'at', at) \
           FROM audit_log \
          WHERE (entity = 'dunning_run' AND entity_id = $1) \
             OR (entity = 'subscription' AND action = 'cancelled_by_dunning' \
                 AND entity_id = (SELECT subscription_id FROM dunning_runs WHERE id = $1) \
                 AND detail->>'run' = $1) \
          ORDER BY id",
        id,
    )
    .await?;
    Ok(json!({ "run": run, "steps": steps, "emails": emails, "audit": audit }))
}
