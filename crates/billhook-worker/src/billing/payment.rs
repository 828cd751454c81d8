//! PaymentIntents and charges in the mirror, refunds from a refunded charge, and the orders
//! they pay for.

use serde_json::{Value, json};
use sqlx::PgConnection;

use super::context::Context;
use super::effects;
use super::event::{Applied, Event};
use super::ledger::{self, Entry};
use super::order::{self, Keys};
use super::upsert::{OnConflict, Upsert};
use super::version::{self, Table, Version, Write};
use crate::email::Template;
use crate::queue::JobError;
use crate::stripe::fields;

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
        PAYMENT_INTENT_TIME_PATHS,
    )
    .await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let status = fields::required_str(object, "status")?;
    let (failure_code, failure_message) = payment_intent_failure(object);
    if !write_payment_intent_mirror(conn, id, &write, &event.id).await? {
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
        effects::email(
            conn,
            ctx,
            event,
            effects::Outgoing {
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
        effects::email(
            conn,
            ctx,
            event,
            effects::Outgoing {
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
    let version = charge_version_at(object, event.created);
    let Some(write) = version::check(conn, ctx, event, Table::Charges, id, object, version).await?
    else {
        return Ok(Applied::Stale);
    };
    let object = write.object.as_ref();
    let payment_intent = fields::id_at(object, "payment_intent");
    let amount_refunded = fields::i64_at(object, "amount_refunded").unwrap_or(0);
    let currency = fields::required_str(object, "currency")?;
    if !write_charge_mirror(conn, id, &write, &event.id).await? {
        return Ok(Applied::Stale);
    }
    let refunds = refunds_of(object);
    let detail = json!({ "amount_refunded": amount_refunded, "refunds": refunds.len(),
                         "fetched": write.fetched });
    event.audit("payment", id, "refunded", detail);

    let amount = fields::required_i64(object, "amount")?;
    let data = json!({ "amount_refunded": amount_refunded, "currency": currency, "reference": id,
                       "fully_refunded": amount_refunded >= amount });
    let source = format!("{id}:refunded:{amount_refunded}");
    let customer = fields::id_at(object, "customer");
    effects::email(
        conn,
        ctx,
        event,
        effects::Outgoing {
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
    effects::lock_key(conn, payment_intent).await?;
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

/// The PaymentIntent's time fields that move forward as it changes.
pub(crate) const PAYMENT_INTENT_TIME_PATHS: &[&str] = &["created", "canceled_at"];

/// A charge's version at `event_time` (an event's `created`, or when a sync fetched it): its
/// `created` and its refunds' (a refund changes the charge without a time field of its own).
pub(crate) fn charge_version_at(charge: &Value, event_time: i64) -> Version {
    let mut version = Version::at(event_time, charge, &["created"]);
    version.object_time = refunds_of(charge)
        .iter()
        .filter_map(|r| fields::i64_at(r, "created"))
        .fold(version.object_time, i64::max);
    version
}

/// The decline code (else the error code) and the message of a PaymentIntent's last failure.
fn payment_intent_failure(object: &Value) -> (Option<&str>, Option<&str>) {
    let code = fields::str_at(object, "last_payment_error.decline_code")
        .or_else(|| fields::str_at(object, "last_payment_error.code"));
    (code, fields::str_at(object, "last_payment_error.message"))
}

/// Writes the PaymentIntent's row of `payments` from `write`, naming `source` (an event id, or
/// a sync's `sync:<run>`) as what it was last written from. `false`: the stored row is newer.
pub(crate) async fn write_payment_intent_mirror(
    conn: &mut PgConnection,
    id: &str,
    write: &Write<'_>,
    source: &str,
) -> Result<bool, JobError> {
    let object = write.object.as_ref();
    let (failure_code, failure_message) = payment_intent_failure(object);
    let payment = Payment {
        table: Table::PaymentIntents,
        id,
        kind: "payment_intent",
        payment_intent_id: Some(id),
        amount: fields::required_i64(object, "amount")?,
        amount_received: fields::i64_at(object, "amount_received"),
        amount_refunded: 0,
        status: fields::required_str(object, "status")?,
        failure_code,
        failure_message,
        object,
    };
    upsert_payment(conn, source, write, &payment).await
}

/// Writes the charge's row of `payments` and its refunds from `write`, naming `source` as what
/// they were last written from. `false`: the stored row is newer, and nothing was written.
pub(crate) async fn write_charge_mirror(
    conn: &mut PgConnection,
    id: &str,
    write: &Write<'_>,
    source: &str,
) -> Result<bool, JobError> {
    let object = write.object.as_ref();
    let payment_intent = fields::id_at(object, "payment_intent");
    let payment = Payment {
        table: Table::Charges,
        id,
        kind: "charge",
        payment_intent_id: payment_intent,
        amount: fields::required_i64(object, "amount")?,
        amount_received: fields::i64_at(object, "amount_captured"),
        amount_refunded: fields::i64_at(object, "amount_refunded").unwrap_or(0),
        status: fields::str_at(object, "status").unwrap_or("succeeded"),
        failure_code: fields::str_at(object, "failure_code"),
        failure_message: fields::str_at(object, "failure_message"),
        object,
    };
    if !upsert_payment(conn, source, write, &payment).await? {
        return Ok(false);
    }
    for refund in refunds_of(object) {
        upsert_refund(
            conn,
            source,
            write.version.event_time,
            id,
            payment_intent,
            refund,
        )
        .await?;
    }
    Ok(true)
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
    /// PaymentIntents or charges: both live in `payments`.
    table: Table,
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

/// `false`: the stored row is newer.
async fn upsert_payment(
    conn: &mut PgConnection,
    source: &str,
    write: &Write<'_>,
    p: &Payment<'_>,
) -> Result<bool, JobError> {
    Upsert::new(p.table, p.id, write, source)
        .set("kind", p.kind, OnConflict::InsertOnly)
        .set(
            "payment_intent_id",
            p.payment_intent_id,
            OnConflict::Replace,
        )
        .set(
            "customer_id",
            fields::id_at(p.object, "customer"),
            OnConflict::Replace,
        )
        .set(
            "invoice_id",
            fields::id_at(p.object, "invoice"),
            OnConflict::KeepIfNull,
        )
        .set("amount", p.amount, OnConflict::Replace)
        .set("amount_received", p.amount_received, OnConflict::Replace)
        .set(
            "amount_refunded",
            p.amount_refunded,
            OnConflict::Expr("greatest(EXCLUDED.amount_refunded, t.amount_refunded)"),
        )
        .set(
            "currency",
            fields::required_str(p.object, "currency")?,
            OnConflict::Replace,
        )
        .set("status", p.status, OnConflict::Replace)
        .set("failure_code", p.failure_code, OnConflict::Replace)
        .set("failure_message", p.failure_message, OnConflict::Replace)
        .set(
            "receipt_email",
            fields::email_of(p.object),
            OnConflict::Replace,
        )
        .object(p.object, OnConflict::Replace)
        .write(conn)
        .await
}

/// `seen_at`: when the refund was known to exist (the event's time), its `created` if it has none.
async fn upsert_refund(
    conn: &mut PgConnection,
    source: &str,
    seen_at: i64,
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
    .bind(fields::i64_at(refund, "created").unwrap_or(seen_at) as f64)
    .bind(refund)
    .bind(source)
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
