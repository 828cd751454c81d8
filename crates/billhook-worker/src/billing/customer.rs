//! Customers in the mirror. `customer.deleted` marks the row deleted; history stays.

use serde_json::Value;
use sqlx::PgConnection;

use super::context::Context;
use super::event::{Applied, Event};
use super::upsert::{OnConflict, Upsert};
use super::version::{self, Table, Write};
use crate::queue::JobError;
use crate::stripe::fields;

/// The customer's time fields that move forward as it changes (see [`version::Version::of`]).
pub(crate) const TIME_PATHS: &[&str] = &["created"];

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let Some((id, write)) =
        version::check_event(conn, ctx, event, Table::Customers, TIME_PATHS).await?
    else {
        return Ok(Applied::Stale);
    };
    let deleted = event.event_type == "customer.deleted" || is_deleted(write.object.as_ref());
    if !write_mirror(conn, id, &write, &event.id, deleted).await? {
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

/// Whether the object is Stripe's deleted-customer stub.
pub(crate) fn is_deleted(object: &Value) -> bool {
    fields::bool_at(object, "deleted") == Some(true)
}

/// Writes the customer's mirror row from `write`, naming `source` (an event id, or a sync's
/// `sync:<run>`) as what it was last written from. `false`: the stored row is newer.
pub(crate) async fn write_mirror(
    conn: &mut PgConnection,
    id: &str,
    write: &Write<'_>,
    source: &str,
    deleted: bool,
) -> Result<bool, JobError> {
    let object = write.object.as_ref();
    // A deletion keeps the last full object: the deleted stub carries nothing worth keeping.
    Upsert::new(Table::Customers, id, write, source)
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
        .await
}
