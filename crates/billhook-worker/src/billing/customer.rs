//! Customers in the mirror. `customer.deleted` marks the row deleted; history stays.

use sqlx::PgConnection;

use super::version::{self, Table};
use super::{Applied, Context, Event, fields};
use crate::runner::JobError;

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let Some((id, write)) =
        version::check_event(conn, ctx, event, Table::Customers, &["created"]).await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let deleted =
        event.event_type == "customer.deleted" || fields::bool_at(object, "deleted") == Some(true);
    // A deletion keeps the last full object: the deleted stub carries nothing worth keeping.
    let written: Option<String> = sqlx::query_scalar(
        "INSERT INTO customers AS c (id, email, name, deleted, livemode, object, stripe_version, object_time, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), $8, $9)
         ON CONFLICT (id) DO UPDATE SET
           email = coalesce(EXCLUDED.email, c.email),
           name = coalesce(EXCLUDED.name, c.name),
           deleted = c.deleted OR EXCLUDED.deleted,
           object = CASE WHEN EXCLUDED.deleted THEN c.object ELSE EXCLUDED.object END,
           stripe_version = EXCLUDED.stripe_version,
           object_time = EXCLUDED.object_time,
           last_event_id = EXCLUDED.last_event_id,
           updated_at = now()
         WHERE (EXCLUDED.stripe_version, EXCLUDED.object_time) >= (c.stripe_version, c.object_time)
         RETURNING id",
    )
    .bind(id)
    .bind(fields::str_at(object, "email"))
    .bind(fields::str_at(object, "name"))
    .bind(deleted)
    .bind(fields::bool_at(object, "livemode").unwrap_or(false))
    .bind(object)
    .bind(write.version.event_time as f64)
    .bind(write.version.object_time)
    .bind(&event.id)
    .fetch_optional(&mut *conn)
    .await?;
    if written.is_none() {
        return Ok(Applied::Stale);
    }
    let action = if deleted { "deleted" } else { "upserted" };
    event.audit(
        "customer",
        id,
        action,
        serde_json::json!({ "type": event.event_type, "fetched": write.fetched }),
    );
    Ok(Applied::Applied)
}
