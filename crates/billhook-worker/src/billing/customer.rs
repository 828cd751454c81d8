//! Customers in the mirror. `customer.deleted` marks the row deleted; history stays.

use anyhow::Context as _;
use serde_json::Value;
use sqlx::PgConnection;

use super::{Applied, Event};
use crate::audit;
use crate::runner::JobError;

pub async fn apply(conn: &mut PgConnection, event: &Event) -> Result<Applied, JobError> {
    let object = &event.data.object;
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .context("customer event without data.object.id")
        .map_err(JobError::Permanent)?;
    let deleted = event.event_type == "customer.deleted"
        || object.get("deleted").and_then(Value::as_bool) == Some(true);
    // Same-second ties are applied: `>=` lets an event of the same second through.
    let written: Option<String> = sqlx::query_scalar(
        "INSERT INTO customers AS c (id, email, name, deleted, livemode, object, stripe_version, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), $8)
         ON CONFLICT (id) DO UPDATE SET
           email = coalesce(EXCLUDED.email, c.email),
           name = coalesce(EXCLUDED.name, c.name),
           deleted = c.deleted OR EXCLUDED.deleted,
           object = CASE WHEN EXCLUDED.deleted THEN c.object ELSE EXCLUDED.object END,
           stripe_version = EXCLUDED.stripe_version,
           last_event_id = EXCLUDED.last_event_id,
           updated_at = now()
         WHERE EXCLUDED.stripe_version >= c.stripe_version
         RETURNING id",
    )
    .bind(id)
    .bind(object.get("email").and_then(Value::as_str))
    .bind(object.get("name").and_then(Value::as_str))
    .bind(deleted)
    .bind(object.get("livemode").and_then(Value::as_bool).unwrap_or(false))
    .bind(object)
    .bind(event.created as f64)
    .bind(&event.id)
    .fetch_optional(&mut *conn)
    .await?;
    if written.is_none() {
        return Ok(Applied::Stale);
    }
    let action = if deleted { "deleted" } else { "upserted" };
    audit::record(
        conn,
        &event.id,
        "customer",
        id,
        action,
        serde_json::json!({ "type": event.event_type }),
    )
    .await?;
    Ok(Applied::Applied)
}
