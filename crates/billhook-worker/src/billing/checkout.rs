//! Checkout Sessions in the mirror, and the orders they pay for. A completed session whose
//! order the application never created creates it; an expired one cancels a pending order.

use serde_json::json;
use sqlx::PgConnection;

use super::order::{self, Keys, NewOrder};
use super::version::{self, Table};
use super::{Applied, Context, Event, fields};
use crate::runner::JobError;

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let Some((id, write)) =
        version::check_event(conn, ctx, event, Table::CheckoutSessions, &["created"]).await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let mode = fields::str_at(object, "mode").unwrap_or("payment");
    let status = fields::str_at(object, "status");
    let reference = fields::str_at(object, "client_reference_id")
        .or_else(|| fields::str_at(object, "metadata.order_id"));
    let customer = fields::id_at(object, "customer");
    let email = fields::email_of(object);
    let payment_intent = fields::id_at(object, "payment_intent");
    let amount = fields::i64_at(object, "amount_total");
    let currency = fields::str_at(object, "currency");
    let written: Option<String> = sqlx::query_scalar(
        "INSERT INTO checkout_sessions AS c (id, mode, status, payment_status, customer_id, customer_email,
             client_reference_id, order_reference, payment_intent_id, subscription_id, invoice_id,
             amount_total, currency, livemode, object, stripe_version, object_time, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, to_timestamp($16), $17, $18)
         ON CONFLICT (id) DO UPDATE SET
           mode = EXCLUDED.mode, status = EXCLUDED.status, payment_status = EXCLUDED.payment_status,
           customer_id = EXCLUDED.customer_id, customer_email = EXCLUDED.customer_email,
           client_reference_id = EXCLUDED.client_reference_id, order_reference = EXCLUDED.order_reference,
           payment_intent_id = EXCLUDED.payment_intent_id, subscription_id = EXCLUDED.subscription_id,
           invoice_id = EXCLUDED.invoice_id, amount_total = EXCLUDED.amount_total,
           currency = EXCLUDED.currency, object = EXCLUDED.object,
           stripe_version = EXCLUDED.stripe_version, object_time = EXCLUDED.object_time,
           last_event_id = EXCLUDED.last_event_id, updated_at = now()
         WHERE (EXCLUDED.stripe_version, EXCLUDED.object_time) >= (c.stripe_version, c.object_time)
         RETURNING id",
    )
    .bind(id)
    .bind(mode)
    .bind(status)
    .bind(fields::str_at(object, "payment_status"))
    .bind(customer)
    .bind(email)
    .bind(fields::str_at(object, "client_reference_id"))
    .bind(reference)
    .bind(payment_intent)
    .bind(fields::id_at(object, "subscription"))
    .bind(fields::id_at(object, "invoice"))
    .bind(amount)
    .bind(currency)
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
    event.audit(
        "checkout_session",
        id,
        "upserted",
        json!({ "type": event.event_type, "status": status, "fetched": write.fetched }),
    );

    // One lock per order, whichever object's event reached it (see order.rs).
    super::lock_key(conn, payment_intent.unwrap_or(id)).await?;
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
