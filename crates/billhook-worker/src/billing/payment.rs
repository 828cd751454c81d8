//! PaymentIntents and charges in the mirror, refunds from a refunded charge, and the orders
//! they pay for.

use serde_json::{Value, json};
use sqlx::PgConnection;

use super::ledger::{self, Entry};
use super::order::{self, Keys};
use super::version::{self, Table, Version};
use super::{Applied, Context, Event, fields};
use crate::email::Template;
use crate::runner::JobError;

pub async fn apply_payment_intent(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let Some((id, write)) = version::check_event(
        conn,
        ctx,
        event,
        Table::PaymentIntents,
        &["created", "canceled_at"],
    )
    .await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let status = fields::required_str(object, "status")?;
    let failure_code = fields::str_at(object, "last_payment_error.decline_code")
        .or_else(|| fields::str_at(object, "last_payment_error.code"));
    let failure_message = fields::str_at(object, "last_payment_error.message");
    if upsert_payment(
        conn,
        event,
        &write.version,
        &Payment {
            id,
            kind: "payment_intent",
            payment_intent_id: Some(id),
            amount: fields::required_i64(object, "amount")?,
            amount_received: fields::i64_at(object, "amount_received"),
            amount_refunded: 0,
            status,
            failure_code,
            failure_message,
            object,
        },
    )
    .await?
        == Applied::Stale
    {
        return Ok(Applied::Stale);
    }
    event.audit(
        "payment",
        id,
        "upserted",
        json!({ "type": event.event_type, "status": status, "failure_code": failure_code,
                "fetched": write.fetched }),
    );
    let keys = Keys {
        session_id: None,
        payment_intent_id: Some(id),
        reference: fields::str_at(object, "metadata.order_id"),
    };
    match order::find(conn, &keys).await? {
        Some(order_id) => order::reconcile(conn, ctx, event, &order_id).await?,
        None => order::not_found(event, id, &keys),
    }
    let customer = fields::id_at(object, "customer");
    let currency = fields::required_str(object, "currency")?;
    if status == "succeeded" {
        let amount = fields::i64_at(object, "amount_received").or(fields::i64_at(object, "amount"));
        let data = json!({ "amount": amount, "currency": currency, "reference": id,
                           "description": fields::str_at(object, "description") });
        super::email(
            conn,
            ctx,
            event,
            super::Outgoing {
                template: Template::PaymentReceipt,
                source: id,
                customer,
                recipient: None,
                data,
                send_after: None,
            },
        )
        .await?;
    } else if !pays_an_invoice(conn, object, id).await? {
        // An invoice's failed payment is dunning's to tell (its day-0 email). From 2025-03-31 a
        // PaymentIntent does not say whether it pays one (no `invoice` field): the email then
        // waits, and the invoice's failure, if it comes meanwhile, withdraws it.
        let send_after = object
            .get("invoice")
            .is_none()
            .then(|| chrono::Utc::now() + ctx.mailer.payment_failed_hold);
        let data = json!({ "amount": fields::i64_at(object, "amount"), "currency": currency,
                           "reference": id, "failure_reason": failure_message.or(failure_code),
                           "description": fields::str_at(object, "description") });
        super::email(
            conn,
            ctx,
            event,
            super::Outgoing {
                template: Template::PaymentFailed,
                source: &event.id,
                customer,
                recipient: None,
                data,
                send_after,
            },
        )
        .await?;
    }
    Ok(Applied::Applied)
}

pub async fn apply_charge(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    let object = &event.data.object;
    let id = fields::required_str(object, "id")?;
    let mut version = Version::of(event, object, &["created"]);
    version.object_time = refunds_of(object)
        .iter()
        .filter_map(|r| fields::i64_at(r, "created"))
        .fold(version.object_time, i64::max);
    let Some(write) = version::check(conn, ctx, event, Table::Charges, id, object, version).await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let payment_intent = fields::id_at(object, "payment_intent");
    let amount_refunded = fields::i64_at(object, "amount_refunded").unwrap_or(0);
    let currency = fields::required_str(object, "currency")?;
    if upsert_payment(
        conn,
        event,
        &write.version,
        &Payment {
            id,
            kind: "charge",
            payment_intent_id: payment_intent,
            amount: fields::required_i64(object, "amount")?,
            amount_received: fields::i64_at(object, "amount_captured"),
            amount_refunded,
            status: fields::str_at(object, "status").unwrap_or("succeeded"),
            failure_code: fields::str_at(object, "failure_code"),
            failure_message: fields::str_at(object, "failure_message"),
            object,
        },
    )
    .await?
        == Applied::Stale
    {
        return Ok(Applied::Stale);
    }
    let refunds = refunds_of(object);
    for refund in refunds {
        upsert_refund(conn, event, id, payment_intent, refund).await?;
    }
    let detail = json!({ "amount_refunded": amount_refunded, "refunds": refunds.len(),
                         "fetched": write.fetched });
    event.audit("payment", id, "refunded", detail);

    let amount = fields::required_i64(object, "amount")?;
    let data = json!({ "amount_refunded": amount_refunded, "currency": currency, "reference": id,
                       "fully_refunded": amount_refunded >= amount });
    let source = format!("{id}:refunded:{amount_refunded}");
    let customer = fields::id_at(object, "customer");
    super::email(
        conn,
        ctx,
        event,
        super::Outgoing {
            template: Template::RefundConfirmation,
            source: &source,
            customer,
            recipient: None,
            data,
            send_after: None,
        },
    )
    .await?;

    let Some(payment_intent) = payment_intent else {
        return debit_without_order(conn, ctx, event, id, amount_refunded, currency).await;
    };
    super::lock_key(conn, payment_intent).await?;
    let keys = Keys {
        session_id: None,
        payment_intent_id: Some(payment_intent),
        reference: None,
    };
    match order::find(conn, &keys).await? {
        Some(order_id) => order::reconcile(conn, ctx, event, &order_id).await?,
        None => {
            order::not_found(event, id, &keys);
            return debit_without_order(conn, ctx, event, id, amount_refunded, currency).await;
        }
    }
    Ok(Applied::Applied)
}

/// A refund of a charge no order pays for (an invoice's, say): debits the charge's customer.
async fn debit_without_order(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
    charge: &str,
    amount_refunded: i64,
    currency: &str,
) -> Result<Applied, JobError> {
    if let Some(customer) = fields::id_at(&event.data.object, "customer") {
        let entry = Entry {
            customer_id: customer,
            source: charge,
            order_id: None,
            event_id: &event.id,
        };
        ledger::debit_refunds(conn, ctx.ledger, &entry, amount_refunded, currency).await?;
    }
    Ok(Applied::Applied)
}

/// The refunds a charge lists (`refunds.data`).
fn refunds_of(charge: &Value) -> &[Value] {
    fields::at(charge, "refunds.data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

struct Payment<'a> {
    id: &'a str,
    kind: &'a str,
    payment_intent_id: Option<&'a str>,
    amount: i64,
    amount_received: Option<i64>,
    amount_refunded: i64,
    status: &'a str,
    failure_code: Option<&'a str>,
    failure_message: Option<&'a str>,
    object: &'a Value,
}

async fn upsert_payment(
    conn: &mut PgConnection,
    event: &Event,
    version: &Version,
    p: &Payment<'_>,
) -> Result<Applied, JobError> {
    let written: Option<String> = sqlx::query_scalar(
        "INSERT INTO payments AS p (id, kind, payment_intent_id, customer_id, invoice_id, amount, amount_received,
             amount_refunded, currency, status, failure_code, failure_message, receipt_email, livemode,
             object, stripe_version, object_time, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, to_timestamp($16), $17, $18)
         ON CONFLICT (id) DO UPDATE SET
           payment_intent_id = EXCLUDED.payment_intent_id, customer_id = EXCLUDED.customer_id,
           invoice_id = coalesce(EXCLUDED.invoice_id, p.invoice_id), amount = EXCLUDED.amount,
           amount_received = EXCLUDED.amount_received,
           amount_refunded = greatest(EXCLUDED.amount_refunded, p.amount_refunded),
           currency = EXCLUDED.currency, status = EXCLUDED.status, failure_code = EXCLUDED.failure_code,
           failure_message = EXCLUDED.failure_message, receipt_email = EXCLUDED.receipt_email,
           object = EXCLUDED.object, stripe_version = EXCLUDED.stripe_version,
           object_time = EXCLUDED.object_time, last_event_id = EXCLUDED.last_event_id, updated_at = now()
         WHERE (EXCLUDED.stripe_version, EXCLUDED.object_time) >= (p.stripe_version, p.object_time)
         RETURNING id",
    )
    .bind(p.id)
    .bind(p.kind)
    .bind(p.payment_intent_id)
    .bind(fields::id_at(p.object, "customer"))
    .bind(fields::id_at(p.object, "invoice"))
    .bind(p.amount)
    .bind(p.amount_received)
    .bind(p.amount_refunded)
    .bind(fields::required_str(p.object, "currency")?)
    .bind(p.status)
    .bind(p.failure_code)
    .bind(p.failure_message)
    .bind(fields::email_of(p.object))
    .bind(fields::bool_at(p.object, "livemode").unwrap_or(false))
    .bind(p.object)
    .bind(version.event_time as f64)
    .bind(version.object_time)
    .bind(&event.id)
    .fetch_optional(conn)
    .await?;
    Ok(if written.is_some() {
        Applied::Applied
    } else {
        Applied::Stale
    })
}

async fn upsert_refund(
    conn: &mut PgConnection,
    event: &Event,
    charge: &str,
    payment_intent: Option<&str>,
    refund: &Value,
) -> Result<(), JobError> {
    let id = fields::required_str(refund, "id")?;
    sqlx::query(
        "INSERT INTO refunds (id, charge_id, payment_intent_id, amount, currency, status, reason, created,
                              object, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8), $9, $10)
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,
           object = EXCLUDED.object, last_event_id = EXCLUDED.last_event_id, updated_at = now()",
    )
    .bind(id)
    .bind(charge)
    .bind(payment_intent)
    .bind(fields::required_i64(refund, "amount")?)
    .bind(fields::required_str(refund, "currency")?)
    .bind(fields::str_at(refund, "status"))
    .bind(fields::str_at(refund, "reason"))
    .bind(fields::i64_at(refund, "created").unwrap_or(event.created) as f64)
    .bind(refund)
    .bind(&event.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the PaymentIntent pays an invoice: it says so up to 2025-02-24 (`invoice`); from
/// 2025-03-31 only the invoice does, so the mirror is asked (an invoice event that has not
/// arrived yet cannot be seen).
async fn pays_an_invoice(
    conn: &mut PgConnection,
    object: &Value,
    id: &str,
) -> Result<bool, JobError> {
    if fields::id_at(object, "invoice").is_some() {
        return Ok(true);
    }
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM invoices WHERE payment_intent_id = $1)")
            .bind(id)
            .fetch_one(conn)
            .await?;
    Ok(known)
}
