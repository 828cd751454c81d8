//! Payment methods in the mirror: attached to a customer, or detached (customer NULL).

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
    let written: Option<String> = sqlx::query_scalar(
        "INSERT INTO payment_methods AS p (id, customer_id, type, card_brand, card_last4, livemode, object,
                                           stripe_version, object_time, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8), $9, $10)
         ON CONFLICT (id) DO UPDATE SET
           customer_id = EXCLUDED.customer_id, type = EXCLUDED.type, card_brand = EXCLUDED.card_brand,
           card_last4 = EXCLUDED.card_last4, object = EXCLUDED.object,
           stripe_version = EXCLUDED.stripe_version, object_time = EXCLUDED.object_time,
           last_event_id = EXCLUDED.last_event_id, updated_at = now()
         WHERE (EXCLUDED.stripe_version, EXCLUDED.object_time) >= (p.stripe_version, p.object_time)
         RETURNING id",
    )
    .bind(id)
    .bind(customer)
    .bind(fields::str_at(object, "type").unwrap_or("unknown"))
    .bind(fields::str_at(object, "card.brand"))
    .bind(fields::str_at(object, "card.last4"))
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
