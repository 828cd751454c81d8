//! Payment methods in the mirror: attached to a customer, or detached (customer NULL).

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
        version::check_event(conn, ctx, event, Table::PaymentMethods, &["created"]).await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let customer = if event.event_type == "payment_method.detached" && !write.fetched {
        None
    } else {
        fields::id_at(object, "customer")
    };
    let written = Upsert::new(Table::PaymentMethods, id, &write, &event.id)
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
        .await?;
    if !written {
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
