//! Invoices in the mirror, in both API shapes; a paid invoice credits the ledger once.
//! A failed subscription invoice opens (or continues) its dunning run; a paid one recovers it
//! and sends the receipt.

use serde_json::json;
use sqlx::PgConnection;

use chrono::{DateTime, Utc};

use super::ledger::{self, Entry};
use super::version::{self, Table};
use super::{Applied, Context, Event, fields};
use crate::dunning::Failure;
use crate::email::Template;
use crate::runner::JobError;

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let Some((id, write)) = version::check_event(
        conn,
        ctx,
        event,
        Table::Invoices,
        &[
            "created",
            "status_transitions.finalized_at",
            "status_transitions.paid_at",
            "status_transitions.voided_at",
            "status_transitions.marked_uncollectible_at",
        ],
    )
    .await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let customer = fields::required_str(object, "customer")?;
    let status = fields::str_at(object, "status");
    let currency = fields::required_str(object, "currency")?;
    let amount_paid = fields::i64_at(object, "amount_paid").unwrap_or(0);
    let subscription = fields::invoice_subscription(object);
    let written: Option<String> = sqlx::query_scalar(
        "INSERT INTO invoices AS i (id, customer_id, subscription_id, payment_intent_id, status, billing_reason,
             amount_due, amount_paid, amount_remaining, currency, attempt_count, customer_email, paid_at,
             livemode, object, stripe_version, object_time, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, to_timestamp($16), $17, $18)
         ON CONFLICT (id) DO UPDATE SET
           customer_id = EXCLUDED.customer_id,
           subscription_id = coalesce(EXCLUDED.subscription_id, i.subscription_id),
           payment_intent_id = coalesce(EXCLUDED.payment_intent_id, i.payment_intent_id),
           status = EXCLUDED.status, billing_reason = EXCLUDED.billing_reason,
           amount_due = EXCLUDED.amount_due, amount_paid = EXCLUDED.amount_paid,
           amount_remaining = EXCLUDED.amount_remaining, currency = EXCLUDED.currency,
           attempt_count = EXCLUDED.attempt_count, customer_email = EXCLUDED.customer_email,
           paid_at = EXCLUDED.paid_at, object = EXCLUDED.object,
           stripe_version = EXCLUDED.stripe_version, object_time = EXCLUDED.object_time,
           last_event_id = EXCLUDED.last_event_id, updated_at = now()
         WHERE (EXCLUDED.stripe_version, EXCLUDED.object_time) >= (i.stripe_version, i.object_time)
         RETURNING id",
    )
    .bind(id)
    .bind(customer)
    .bind(subscription)
    .bind(fields::invoice_payment_intent(object))
    .bind(status)
    .bind(fields::str_at(object, "billing_reason"))
    .bind(fields::i64_at(object, "amount_due").unwrap_or(0))
    .bind(amount_paid)
    .bind(fields::i64_at(object, "amount_remaining").unwrap_or(0))
    .bind(currency)
    .bind(fields::i64_at(object, "attempt_count").unwrap_or(0) as i32)
    .bind(fields::str_at(object, "customer_email"))
    .bind(fields::time_at(object, "status_transitions.paid_at"))
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
            super::email(
                conn,
                ctx,
                event,
                super::Outgoing {
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
