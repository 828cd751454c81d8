//! Checkout Sessions in the mirror, and the orders they pay for. A completed session whose
//! order the application never created creates it; an expired one cancels a pending order.

use serde_json::{Value, json};
use sqlx::PgConnection;

use super::context::Context;
use super::effects;
use super::event::{Applied, Event};
use super::order::{self, Keys, NewOrder};
use super::upsert::{OnConflict, Upsert};
use super::version::{self, Table, Write};
use crate::queue::JobError;
use crate::stripe::fields;

/// The session's time fields that move forward as it changes.
pub(crate) const TIME_PATHS: &[&str] = &["created"];

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let Some((id, write)) =
        version::check_event(conn, ctx, event, Table::CheckoutSessions, TIME_PATHS).await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let status = fields::str_at(object, "status");
    let reference = order_reference(object);
    let customer = fields::id_at(object, "customer");
    let email = fields::email_of(object);
    let payment_intent = fields::id_at(object, "payment_intent");
    let amount = fields::i64_at(object, "amount_total");
    let currency = fields::str_at(object, "currency");
    if !write_mirror(conn, id, &write, &event.id).await? {
        return Ok(Applied::Stale);
    }
    event.audit(
        "checkout_session",
        id,
        "upserted",
        json!({ "type": event.event_type, "status": status, "fetched": write.fetched }),
    );

    // One lock per order, whichever object's event reached it (see order.rs).
    effects::lock_key(conn, payment_intent.unwrap_or(id)).await?;
    let keys = Keys {
        session_id: Some(id),
        payment_intent_id: payment_intent,
        reference,
    };
    let order_id = match order::find(conn, &keys).await? {
        Some(order_id) => order_id,
        None if status == Some("complete") => {
            let new = NewOrder {
                reference,
                session_id: id,
                customer_id: customer,
                customer_email: email,
                amount,
                currency,
            };
            order::create(conn, event, &new).await?
        }
        None => {
            order::not_found(event, id, &keys);
            return Ok(Applied::Applied);
        }
    };
    order::reconcile(conn, ctx, event, &order_id).await?;
    Ok(Applied::Applied)
}

/// The application's reference for the session's order: `client_reference_id`, else
/// `metadata.order_id`.
fn order_reference(session: &Value) -> Option<&str> {
    fields::str_at(session, "client_reference_id")
        .or_else(|| fields::str_at(session, "metadata.order_id"))
}

/// Writes the session's mirror row from `write`, naming `source` (an event id, or a sync's
/// `sync:<run>`) as what it was last written from. `false`: the stored row is newer. Orders are
/// business state, not mirror: only the event handler finds or creates them.
pub(crate) async fn write_mirror(
    conn: &mut PgConnection,
    id: &str,
    write: &Write<'_>,
    source: &str,
) -> Result<bool, JobError> {
    let object = write.object.as_ref();
    Upsert::new(Table::CheckoutSessions, id, write, source)
        .set(
            "mode",
            fields::str_at(object, "mode").unwrap_or("payment"),
            OnConflict::Replace,
        )
        .set(
            "status",
            fields::str_at(object, "status"),
            OnConflict::Replace,
        )
        .set(
            "payment_status",
            fields::str_at(object, "payment_status"),
            OnConflict::Replace,
        )
        .set(
            "customer_id",
            fields::id_at(object, "customer"),
            OnConflict::Replace,
        )
        .set(
            "customer_email",
            fields::email_of(object),
            OnConflict::Replace,
        )
        .set(
            "client_reference_id",
            fields::str_at(object, "client_reference_id"),
            OnConflict::Replace,
        )
        .set(
            "order_reference",
            order_reference(object),
            OnConflict::Replace,
        )
        .set(
            "payment_intent_id",
            fields::id_at(object, "payment_intent"),
            OnConflict::Replace,
        )
        .set(
            "subscription_id",
            fields::id_at(object, "subscription"),
            OnConflict::Replace,
        )
        .set(
            "invoice_id",
            fields::id_at(object, "invoice"),
            OnConflict::Replace,
        )
        .set(
            "amount_total",
            fields::i64_at(object, "amount_total"),
            OnConflict::Replace,
        )
        .set(
            "currency",
            fields::str_at(object, "currency"),
            OnConflict::Replace,
        )
        .object(object, OnConflict::Replace)
        .write(conn)
        .await
}
