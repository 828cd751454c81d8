//! Subscriptions and their items in the mirror, with stale-event protection; the host
//! application hears `subscription.updated`, and `entitlements.changed` when what the customer
//! is entitled to (the `entitlements` view) changed.

use serde_json::{Value, json};
use sqlx::PgConnection;

use super::context::Context;
use super::effects;
use super::event::{Applied, Event};
use super::upsert::{OnConflict, Upsert};
use super::version::{self, Table, Version, Write};
use crate::email::Template;
use crate::queue::JobError;
use crate::stripe::fields;

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let object = &event.data.object;
    let id = fields::required_str(object, "id")?;
    let version = version_at(object, event.created);
    let Some(write) =
        version::check(conn, ctx, event, Table::Subscriptions, id, object, version).await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let customer = fields::required_str(object, "customer")?;
    let status = fields::required_str(object, "status")?;
    let before = entitlements_of(conn, customer).await?;
    let previous_status: Option<String> =
        sqlx::query_scalar("SELECT status FROM subscriptions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if !write_mirror(conn, id, &write, &event.id).await? {
        return Ok(Applied::Stale);
    }
    let (_, period_end) = fields::subscription_period(object);
    event.audit(
        "subscription",
        id,
        "upserted",
        json!({ "type": event.event_type, "status": status, "previous_status": previous_status,
                "fetched": write.fetched }),
    );

    if event.event_type != "customer.subscription.trial_will_end" {
        let notice = json!({
            "subscription": id,
            "customer": customer,
            "status": status,
            "previous_status": previous_status,
            "cancel_at_period_end": fields::bool_at(object, "cancel_at_period_end").unwrap_or(false),
            "current_period_end": period_end,
            "items": items_summary(object),
        });
        effects::notify(conn, ctx, event, "subscription.updated", &event.id, notice).await?;
    }
    match event.event_type.as_str() {
        "customer.subscription.trial_will_end" => {
            let trial_end = fields::time_at(object, "trial_end");
            let has_payment_method = fields::id_at(object, "default_payment_method").is_some()
                || sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE customer_id = $1)",
                )
                .bind(customer)
                .fetch_one(&mut *conn)
                .await?;
            let data = json!({ "subscription": id,
                "trial_end": trial_end.map(|t| t.format("%Y-%m-%d").to_string()),
                "has_payment_method": has_payment_method });
            let source = format!("{id}:trial_end:{}", trial_end.map_or(0, |t| t.timestamp()));
            effects::email(
                conn,
                ctx,
                event,
                effects::Outgoing {
                    template: Template::TrialEnding,
                    source: &source,
                    customer: Some(customer),
                    recipient: None,
                    data,
                    send_after: None,
                },
            )
            .await?;
        }
        "customer.subscription.deleted" => {
            // The same source as dunning's cancellation email: one email in all.
            let data = json!({ "subscription": id, "reason": Value::Null });
            effects::email(
                conn,
                ctx,
                event,
                effects::Outgoing {
                    template: Template::SubscriptionCancelled,
                    source: id,
                    customer: Some(customer),
                    recipient: None,
                    data,
                    send_after: None,
                },
            )
            .await?;
        }
        _ => {}
    }
    let after = entitlements_of(conn, customer).await?;
    if before != after {
        event.audit(
            "entitlements",
            customer,
            "changed",
            json!({ "before": before, "after": after }),
        );
        let data = json!({ "customer": customer, "entitlements": after });
        effects::notify(conn, ctx, event, "entitlements.changed", &event.id, data).await?;
    }
    Ok(Applied::Applied)
}

/// The subscription's own time fields, and (from 2025-03-31) its items' period starts, with
/// `event_time` (an event's `created`, or when a sync fetched it).
pub(crate) fn version_at(object: &Value, event_time: i64) -> Version {
    let mut version = Version::at(
        event_time,
        object,
        &[
            "created",
            "current_period_start",
            "trial_start",
            "canceled_at",
            "ended_at",
        ],
    );
    let items_start = fields::subscription_items(object)
        .iter()
        .filter_map(|i| fields::i64_at(i, "current_period_start"))
        .max()
        .unwrap_or(0);
    version.object_time = version.object_time.max(items_start);
    version
}

/// Writes the subscription's mirror row and its items from `write`, naming `source` (an event
/// id, or a sync's `sync:<run>`) as what it was last written from. `false`: the stored row is
/// newer, and nothing was written. `status_since` is the write's event time when the status
/// changes.
pub(crate) async fn write_mirror(
    conn: &mut PgConnection,
    id: &str,
    write: &Write<'_>,
    source: &str,
) -> Result<bool, JobError> {
    let object = write.object.as_ref();
    let (period_start, period_end) = fields::subscription_period(object);
    let status_since = chrono::DateTime::from_timestamp(write.version.event_time, 0);
    let written = Upsert::new(Table::Subscriptions, id, write, source)
        .set("customer_id", fields::required_str(object, "customer")?, OnConflict::Replace)
        .set("status", fields::required_str(object, "status")?, OnConflict::Replace)
        .set(
            "status_since",
            status_since,
            OnConflict::Expr(
                "CASE WHEN t.status = EXCLUDED.status THEN t.status_since ELSE EXCLUDED.status_since END",
            ),
        )
        .set(
            "cancel_at_period_end",
            fields::bool_at(object, "cancel_at_period_end").unwrap_or(false),
            OnConflict::Replace,
        )
        .set("current_period_start", period_start, OnConflict::Replace)
        .set("current_period_end", period_end, OnConflict::Replace)
        .set("trial_end", fields::time_at(object, "trial_end"), OnConflict::Replace)
        .set("canceled_at", fields::time_at(object, "canceled_at"), OnConflict::Replace)
        .set("ended_at", fields::time_at(object, "ended_at"), OnConflict::Replace)
        .object(object, OnConflict::Replace)
        .write(conn)
        .await?;
    if written {
        write_items(conn, id, object).await?;
    }
    Ok(written)
}

/// Replaces the subscription's items with the ones in `object`.
async fn write_items(conn: &mut PgConnection, id: &str, object: &Value) -> Result<(), JobError> {
    let items = fields::subscription_items(object);
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|i| fields::str_at(i, "id"))
        .collect();
    sqlx::query("DELETE FROM subscription_items WHERE subscription_id = $1 AND NOT (id = ANY($2))")
        .bind(id)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    for item in items {
        let Some(item_id) = fields::str_at(item, "id") else {
            continue;
        };
        let price = fields::id_at(item, "price")
            .or_else(|| fields::id_at(item, "plan"))
            .unwrap_or("unknown");
        sqlx::query(
            "INSERT INTO subscription_items (id, subscription_id, price_id, product_id, quantity,
                                             current_period_start, current_period_end)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET subscription_id = EXCLUDED.subscription_id,
               price_id = EXCLUDED.price_id, product_id = EXCLUDED.product_id,
               quantity = EXCLUDED.quantity, current_period_start = EXCLUDED.current_period_start,
               current_period_end = EXCLUDED.current_period_end",
        )
        .bind(item_id)
        .bind(id)
        .bind(price)
        .bind(fields::id_at(item, "price.product"))
        .bind(fields::i64_at(item, "quantity"))
        .bind(fields::time_at(item, "current_period_start"))
        .bind(fields::time_at(item, "current_period_end"))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn items_summary(object: &Value) -> Vec<Value> {
    fields::subscription_items(object)
        .iter()
        .map(|i| {
            json!({
                "price": fields::id_at(i, "price"),
                "product": fields::id_at(i, "price.product"),
                "quantity": fields::i64_at(i, "quantity"),
            })
        })
        .collect()
}

/// The customer's rows of the `entitlements` view, in a stable order.
pub async fn entitlements_of(conn: &mut PgConnection, customer: &str) -> Result<Value, JobError> {
    let rows: Value = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(jsonb_build_object('subscription', subscription_id, 'status', status,
                    'price', price_id, 'product', product_id, 'quantity', quantity)
                  ORDER BY subscription_id, price_id), '[]'::jsonb)
           FROM entitlements WHERE customer_id = $1",
    )
    .bind(customer)
    .fetch_one(conn)
    .await?;
    Ok(rows)
}
