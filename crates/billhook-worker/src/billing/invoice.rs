//! Invoices in the mirror, in both API shapes; a paid invoice credits the ledger once.
//! A failed subscription invoice opens (or continues) its dunning run; a paid one recovers it
//! and sends the receipt.

use serde_json::json;
use sqlx::PgConnection;

use chrono::{DateTime, Utc};

use super::context::Context;
use super::effects;
use super::event::{Applied, Event};
use super::ledger::{self, Entry};
use super::upsert::{OnConflict, Upsert};
use super::version::{self, Table, Write};
use crate::dunning::Failure;
use crate::email::Template;
use crate::queue::JobError;
use crate::stripe::fields;

/// The invoice's time fields that move forward as it changes.
pub(crate) const TIME_PATHS: &[&str] = &[
    "created",
    "status_transitions.finalized_at",
    "status_transitions.paid_at",
    "status_transitions.voided_at",
    "status_transitions.marked_uncollectible_at",
];

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let Some((id, write)) =
        version::check_event(conn, ctx, event, Table::Invoices, TIME_PATHS).await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let customer = fields::required_str(object, "customer")?;
    let status = fields::str_at(object, "status");
    let currency = fields::required_str(object, "currency")?;
    let amount_paid = fields::i64_at(object, "amount_paid").unwrap_or(0);
    let subscription = fields::invoice_subscription(object);
    if !write_mirror(conn, id, &write, &event.id).await? {
        return Ok(Applied::Stale);
    }
    event.audit(
        "invoice",
        id,
        "upserted",
        json!({ "type": event.event_type, "status": status, "subscription": subscription,
                "fetched": write.fetched }),
    );
    if event.event_type == "invoice.payment_failed"
        && status != Some("paid")
        && let Some(subscription) = subscription
    {
        let failure = Failure {
            invoice_id: id,
            subscription_id: subscription,
            customer_id: customer,
            event_id: &event.id,
            failed_at: DateTime::from_timestamp(event.created, 0).unwrap_or_else(Utc::now),
        };
        ctx.dunning.open(conn, &failure).await?;
        if let Some(payment_intent) = fields::invoice_payment_intent(object) {
            // The failure email of its PaymentIntent, held because the PaymentIntent could not
            // say it paid an invoice: dunning tells the customer instead.
            for email in crate::email::withdraw_payment_failed(conn, payment_intent).await? {
                event.audit(
                    "email",
                    &email,
                    "withdrawn",
                    json!({ "payment_intent": payment_intent, "invoice": id }),
                );
            }
        }
    }
    if status == Some("paid") {
        crate::dunning::recover(conn, id, &event.id).await?;
        if amount_paid > 0 {
            // The PaymentIntent's own receipt has the same source: one receipt per payment.
            let source = fields::invoice_payment_intent(object).unwrap_or(id);
            let data = json!({ "amount": amount_paid, "currency": currency, "reference": id,
                               "description": format!("invoice {id}") });
            effects::email(
                conn,
                ctx,
                event,
                effects::Outgoing {
                    template: Template::PaymentReceipt,
                    source,
                    customer: Some(customer),
                    recipient: None,
                    data,
                    send_after: None,
                },
            )
            .await?;
        }
        let entry = Entry {
            customer_id: customer,
            source: id,
            order_id: None,
            event_id: &event.id,
        };
        if ledger::credit(
            conn,
            ctx.ledger,
            "invoice_credit",
            &entry,
            amount_paid,
            currency,
        )
        .await?
        {
            event.audit(
                "ledger",
                customer,
                "invoice_credit",
                json!({ "invoice": id, "amount_paid": amount_paid, "currency": currency }),
            );
        }
    }
    Ok(Applied::Applied)
}

/// Writes the invoice's mirror row from `write`, in either API shape, naming `source` (an event
/// id, or a sync's `sync:<run>`) as what it was last written from. `false`: the stored row is
/// newer.
pub(crate) async fn write_mirror(
    conn: &mut PgConnection,
    id: &str,
    write: &Write<'_>,
    source: &str,
) -> Result<bool, JobError> {
    let object = write.object.as_ref();
    Upsert::new(Table::Invoices, id, write, source)
        .set(
            "customer_id",
            fields::required_str(object, "customer")?,
            OnConflict::Replace,
        )
        .set(
            "subscription_id",
            fields::invoice_subscription(object),
            OnConflict::KeepIfNull,
        )
        .set(
            "payment_intent_id",
            fields::invoice_payment_intent(object),
            OnConflict::KeepIfNull,
        )
        .set(
            "status",
            fields::str_at(object, "status"),
            OnConflict::Replace,
        )
        .set(
            "billing_reason",
            fields::str_at(object, "billing_reason"),
            OnConflict::Replace,
        )
        .set(
            "amount_due",
            fields::i64_at(object, "amount_due").unwrap_or(0),
            OnConflict::Replace,
        )
        .set(
            "amount_paid",
            fields::i64_at(object, "amount_paid").unwrap_or(0),
            OnConflict::Replace,
        )
        .set(
            "amount_remaining",
            fields::i64_at(object, "amount_remaining").unwrap_or(0),
            OnConflict::Replace,
        )
        .set(
            "currency",
            fields::required_str(object, "currency")?,
            OnConflict::Replace,
        )
        .set(
            "attempt_count",
            fields::i64_at(object, "attempt_count").unwrap_or(0) as i32,
            OnConflict::Replace,
        )
        .set(
            "customer_email",
            fields::str_at(object, "customer_email"),
            OnConflict::Replace,
        )
        .set(
            "paid_at",
            fields::time_at(object, "status_transitions.paid_at"),
            OnConflict::Replace,
        )
        .object(object, OnConflict::Replace)
        .write(conn)
        .await
}
