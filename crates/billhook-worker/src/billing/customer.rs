//! Customers in the mirror. `customer.deleted` marks the row deleted; history stays.

use sqlx::PgConnection;

use super::context::Context;
use super::event::{Applied, Event};
use super::upsert::{OnConflict, Upsert};
use super::version::{self, Table};
use crate::queue::JobError;
use crate::stripe::fields;

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
    let written = Upsert::new(Table::Customers, id, &write, &event.id)
        .set(
            "email",
            fields::str_at(object, "email"),
            OnConflict::KeepIfNull,
        )
        .set(
            "name",
            fields::str_at(object, "name"),
            OnConflict::KeepIfNull,
        )
        .set(
            "deleted",
            deleted,
            OnConflict::Expr("t.deleted OR EXCLUDED.deleted"),
        )
        .object(
            object,
            OnConflict::Expr("CASE WHEN EXCLUDED.deleted THEN t.object ELSE EXCLUDED.object END"),
        )
        .write(conn)
        .await?;
    if !written {
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
