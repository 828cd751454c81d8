//! Orders: found from a Checkout Session, a PaymentIntent or a charge, and brought up to date
//! with the mirror. The status is decided by [`super::order_status::decide`] from the mirrored
//! session, PaymentIntent and charges (not from the last event seen), so it ends the same
//! whatever order events arrive in.
//!
//! Effects happen on transitions, each once: becoming paid credits the ledger and sends
//! `order.paid`; a new refunded total debits the ledger and sends `order.refunded`; becoming
//! failed or cancelled sends `order.payment_failed` / `order.cancelled`.

use serde_json::json;
use sqlx::PgConnection;

use super::context::Context;
use super::effects;
use super::event::Event;
use super::ledger::{self, Entry};
use super::order_status::{
    Decision, IntentStatus, OrderStatus, PaymentFacts, SessionPayment, SessionStatus, decide,
};
use crate::email::Template;
use crate::queue::JobError;

/// What identifies an order, from whatever the event carries.
#[derive(Debug, Default)]
pub struct Keys<'a> {
    pub session_id: Option<&'a str>,
    pub payment_intent_id: Option<&'a str>,
    /// The application's reference: client_reference_id or metadata.order_id.
    pub reference: Option<&'a str>,
}

#[derive(Debug, sqlx::FromRow)]
struct Order {
    id: String,
    reference: Option<String>,
    checkout_ref: Option<String>,
    payment_intent_id: Option<String>,
    customer_id: Option<String>,
    customer_email: Option<String>,
    amount: Option<i64>,
    currency: Option<String>,
    status: String,
    amount_refunded: i64,
    paid_at: Option<chrono::DateTime<chrono::Utc>>,
}

const ORDER_COLUMNS: &str = "id, reference, checkout_ref, payment_intent_id, customer_id, customer_email, \
                             amount, currency, status, amount_refunded, paid_at";

/// The order these keys point at, locked for the transaction. Sessions already in the mirror
/// lead from a PaymentIntent to its order.
pub async fn find(conn: &mut PgConnection, keys: &Keys<'_>) -> Result<Option<String>, JobError> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT o.id FROM orders o
          WHERE o.checkout_ref = $1 OR o.checkout_ref = $2 OR o.payment_intent_id = $2 OR o.reference = $3
             OR o.checkout_ref IN (SELECT s.id FROM checkout_sessions s WHERE s.payment_intent_id = $2)
             OR o.reference IN (SELECT s.order_reference FROM checkout_sessions s WHERE s.payment_intent_id = $2)
          ORDER BY (o.checkout_ref = $1 OR o.checkout_ref = $2) DESC NULLS LAST, o.created_at
          LIMIT 1 FOR UPDATE",
    )
    .bind(keys.session_id)
    .bind(keys.payment_intent_id)
    .bind(keys.reference)
    .fetch_optional(conn)
    .await?;
    Ok(id)
}

/// A pending order created from a completed Checkout Session the application did not announce.
pub struct NewOrder<'a> {
    pub reference: Option<&'a str>,
    pub session_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub customer_email: Option<&'a str>,
    pub amount: Option<i64>,
    pub currency: Option<&'a str>,
}

pub async fn create(
    conn: &mut PgConnection,
    event: &Event,
    new: &NewOrder<'_>,
) -> Result<String, JobError> {
    let id: String = sqlx::query_scalar(
        "INSERT INTO orders (reference, checkout_ref, customer_id, customer_email, amount, currency, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, 'checkout') RETURNING id",
    )
    .bind(new.reference)
    .bind(new.session_id)
    .bind(new.customer_id)
    .bind(new.customer_email)
    .bind(new.amount)
    .bind(new.currency)
    .fetch_one(&mut *conn)
    .await?;
    event.audit(
        "order",
        &id,
        "created_from_checkout",
        json!({ "session": new.session_id, "reference": new.reference }),
    );
    Ok(id)
}

/// Records that an event about an order found none. Not an error: there is nothing a retry
/// would change.
pub fn not_found(event: &Event, subject: &str, keys: &Keys<'_>) {
    tracing::info!(
        subject,
        session = keys.session_id,
        payment_intent = keys.payment_intent_id,
        reference = keys.reference,
        "no order for this event; applied without one"
    );
    event.audit(
        "order",
        subject,
        "not_found",
        json!({ "type": event.event_type, "session": keys.session_id,
                "payment_intent": keys.payment_intent_id, "reference": keys.reference }),
    );
}

/// What the mirror says about an order's payment.
#[derive(Debug, Default, sqlx::FromRow)]
struct Facts {
    session_status: Option<String>,
    session_payment_status: Option<String>,
    session_mode: Option<String>,
    session_amount: Option<i64>,
    session_currency: Option<String>,
    session_customer: Option<String>,
    session_email: Option<String>,
    payment_intent_id: Option<String>,
    pi_status: Option<String>,
    pi_amount: Option<i64>,
    pi_currency: Option<String>,
    pi_customer: Option<String>,
    pi_email: Option<String>,
    failure: Option<String>,
    refunded: i64,
}

impl Facts {
    /// The facts the order's status is decided from ([`super::order_status`]).
    fn payment(&self) -> PaymentFacts {
        PaymentFacts {
            session: self
                .session_status
                .as_deref()
                .map(SessionStatus::from_stripe),
            session_payment: self
                .session_payment_status
                .as_deref()
                .map(SessionPayment::from_stripe),
            intent: self.pi_status.as_deref().map(IntentStatus::from_stripe),
            failure_recorded: self.failure.is_some(),
            refunded: self.refunded,
        }
    }
}

/// Brings the order up to date with the mirror and runs the effects of its transitions.
pub async fn reconcile(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
    order_id: &str,
) -> Result<(), JobError> {
    let order: Order = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"
    )))
    .bind(order_id)
    .fetch_one(&mut *conn)
    .await?;
    let facts = facts(conn, &order).await?;
    let amount = order.amount.or(facts.session_amount).or(facts.pi_amount);
    let currency = order
        .currency
        .clone()
        .or(facts.session_currency.clone())
        .or(facts.pi_currency.clone());
    let Decision {
        status,
        paid,
        refunded,
    } = decide(OrderStatus::parse(&order.status), amount, &facts.payment());
    let status = status.as_str();
    let customer = order
        .customer_id
        .clone()
        .or(facts.session_customer.clone())
        .or(facts.pi_customer.clone());
    let email = order
        .customer_email
        .clone()
        .or(facts.session_email.clone())
        .or(facts.pi_email.clone());
    let payment_intent = order
        .payment_intent_id
        .clone()
        .or(facts.payment_intent_id.clone());
    sqlx::query(
        "UPDATE orders SET status = $2, amount_refunded = $3, amount = $4, currency = $5, customer_id = $6,
                customer_email = $7, payment_intent_id = $8,
                failure_reason = CASE WHEN $2 = 'failed' THEN $9 ELSE failure_reason END,
                paid_at = CASE WHEN $10 THEN coalesce(paid_at, now()) ELSE paid_at END,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(&order.id)
    .bind(status)
    .bind(refunded)
    .bind(amount)
    .bind(&currency)
    .bind(&customer)
    .bind(&email)
    .bind(&payment_intent)
    .bind(&facts.failure)
    .bind(paid)
    .execute(&mut *conn)
    .await?;
    if status != order.status {
        event.audit(
            "order",
            &order.id,
            "status_changed",
            json!({ "from": order.status, "to": status }),
        );
    }
    let summary = json!({
        "order": order.id, "reference": order.reference, "checkout_ref": order.checkout_ref,
        "payment_intent": payment_intent, "customer": customer, "email": email,
        "amount": amount, "currency": currency, "status": status,
    });
    // The ledger account: the Stripe customer, or the e-mail of a guest checkout.
    let account = customer
        .clone()
        .or_else(|| email.as_ref().map(|e| format!("email:{e}")));

    if paid && order.paid_at.is_none() {
        // A subscription's payments are credited from its invoices, never twice from Checkout.
        let credited = facts.session_mode.as_deref() != Some("subscription");
        if let (true, Some(account), Some(amount), Some(currency)) =
            (credited, &account, amount, &currency)
        {
            let entry = Entry {
                customer_id: account,
                source: &order.id,
                order_id: Some(&order.id),
                event_id: &event.id,
            };
            ledger::credit(
                conn,
                ctx.ledger,
                "purchase_credit",
                &entry,
                amount,
                currency,
            )
            .await?;
        }
        effects::notify(conn, ctx, event, "order.paid", &order.id, summary.clone()).await?;
        let data = json!({ "order": order.id, "order_reference": order.reference,
                           "amount": amount, "currency": currency });
        effects::email(
            conn,
            ctx,
            event,
            effects::Outgoing {
                template: Template::OrderConfirmation,
                source: &order.id,
                customer: customer.as_deref(),
                recipient: email.as_deref(),
                data,
                send_after: None,
            },
        )
        .await?;
    }
    if refunded > order.amount_refunded {
        if let Some(account) = &account {
            debit_charges(
                conn,
                ctx,
                event,
                &order.id,
                account,
                payment_intent.as_deref(),
            )
            .await?;
        }
        let data = json!({ "order": summary, "amount_refunded": refunded,
                           "fully_refunded": status == "refunded" });
        let key = format!("{}:{refunded}", order.id);
        effects::notify(conn, ctx, event, "order.refunded", &key, data).await?;
    }
    if status != order.status {
        match status {
            "failed" => {
                let data = json!({ "order": summary, "failure_reason": facts.failure });
                let key = format!("{}:{}", order.id, event.id);
                effects::notify(conn, ctx, event, "order.payment_failed", &key, data).await?;
            }
            "cancelled" => {
                effects::notify(conn, ctx, event, "order.cancelled", &order.id, summary).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Debits each refunded charge of the order's PaymentIntent up to its refunded total.
async fn debit_charges(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
    order_id: &str,
    account: &str,
    payment_intent: Option<&str>,
) -> Result<(), JobError> {
    let charges: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT id, amount_refunded, currency FROM payments
          WHERE kind = 'charge' AND payment_intent_id = $1 AND amount_refunded > 0 ORDER BY id",
    )
    .bind(payment_intent)
    .fetch_all(&mut *conn)
    .await?;
    for (charge, refunded, currency) in charges {
        let entry = Entry {
            customer_id: account,
            source: &charge,
            order_id: Some(order_id),
            event_id: &event.id,
        };
        ledger::debit_refunds(conn, ctx.ledger, &entry, refunded, &currency).await?;
    }
    Ok(())
}

async fn facts(conn: &mut PgConnection, order: &Order) -> Result<Facts, JobError> {
    let facts: Option<Facts> = sqlx::query_as(
        "WITH s AS (
             SELECT * FROM checkout_sessions
              WHERE id = $1 OR ($2::text IS NOT NULL AND order_reference = $2)
                 OR ($3::text IS NOT NULL AND payment_intent_id = $3)
              ORDER BY (id = $1) DESC NULLS LAST, stripe_version DESC LIMIT 1),
         pi_id AS (
             SELECT coalesce($3, (SELECT payment_intent_id FROM s),
                             CASE WHEN $1 LIKE 'pi\\_%' THEN $1 END) AS id),
         p AS (SELECT * FROM payments WHERE kind = 'payment_intent' AND id = (SELECT id FROM pi_id))
         SELECT s.status AS session_status, s.payment_status AS session_payment_status,
                s.mode AS session_mode, s.amount_total AS session_amount, s.currency AS session_currency,
                s.customer_id AS session_customer, s.customer_email AS session_email,
                (SELECT id FROM pi_id) AS payment_intent_id,
                p.status AS pi_status, p.amount AS pi_amount, p.currency AS pi_currency,
                p.customer_id AS pi_customer, p.receipt_email AS pi_email,
                CASE WHEN p.failure_code IS NOT NULL OR p.failure_message IS NOT NULL
                     THEN coalesce(p.failure_message, p.failure_code) END AS failure,
                (SELECT coalesce(sum(amount_refunded), 0)::bigint FROM payments
                  WHERE kind = 'charge' AND payment_intent_id = (SELECT id FROM pi_id)) AS refunded
           FROM (SELECT 1) one LEFT JOIN s ON true LEFT JOIN p ON true",
    )
    .bind(order.checkout_ref.as_deref())
    .bind(order.reference.as_deref())
    .bind(order.payment_intent_id.as_deref())
    .fetch_optional(conn)
    .await?;
    Ok(facts.unwrap_or_default())
}
