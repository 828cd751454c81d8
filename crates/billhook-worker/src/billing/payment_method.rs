//! Payment methods in the mirror: attached to a customer, or detached (customer NULL).

use sqlx::PgConnection;

use super::context::Context;
use super::event::{Applied, Event};
use super::upsert::{OnConflict, Upsert};
use super::version::{self, Table, Write};
use crate::queue::JobError;
use crate::stripe::fields;

/// The payment method's time fields that move forward as it changes.
pub(crate) const TIME_PATHS: &[&str] = &["created"];

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let Some((id, write)) =
        version::check_event(conn, ctx, event, Table::PaymentMethods, TIME_PATHS).await?
    else {
        return Ok(Applied::Stale);
    };
    let customer = if event.event_type == "payment_method.detached" && !write.fetched {
        None
    } else {
        fields::id_at(write.object.as_ref(), "customer")
    };
    if !write_mirror(conn, id, &write, &event.id, customer).await? {
        return Ok(Applied::Stale);
    }
    let action = if customer.is_some() {
        "attached"
    } else {
        "detached"
    };
    event.audit(
        "payment_method",
        id,
        action,
        serde_json::json!({ "customer": customer, "fetched": write.fetched }),
    );
    Ok(Applied::Applied)
}

/// Writes the payment method's mirror row from `write`, attached to `customer` (`None`:
/// detached), naming `source` as what it was last written from. `false`: the stored row is
/// newer.
pub(crate) async fn write_mirror(
    conn: &mut PgConnection,
    id: &str,
    write: &Write<'_>,
    source: &str,
    customer: Option<&str>,
) -> Result<bool, JobError> {
    let object = write.object.as_ref();
    Upsert::new(Table::PaymentMethods, id, write, source)
        .set("customer_id", customer, OnConflict::Replace)
        .set(
            "type",
            fields::str_at(object, "type").unwrap_or("unknown"),
            OnConflict::Replace,
        )
        .set(
            "card_brand",
            fields::str_at(object, "card.brand"),
            OnConflict::Replace,
        )
        .set(
            "card_last4",
            fields::str_at(object, "card.last4"),
            OnConflict::Replace,
        )
        .object(object, OnConflict::Replace)
        .write(conn)
        .await
}
