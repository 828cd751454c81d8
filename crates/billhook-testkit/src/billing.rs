//! Applying events straight to a database, the way a worker's ProcessEvent job does, without
//! HTTP or apalis in between: for tests that replay many deliveries in many orders. Also
//! snapshots of the billing state, for comparing outcomes.

use billhook_core::ingest::{self, Delivery, Origin};
use billhook_core::jobs::ProcessEvent;
use billhook_core::stripe::EventId;
use billhook_core::stripe::{Envelope, Verified, event_types};
use billhook_worker::billing::context::Context;
use billhook_worker::billing::job::ProcessEventJob;
use billhook_worker::billing::ledger::LedgerRule;
use billhook_worker::billing::metrics::EventMetrics;
use billhook_worker::dunning::{Dunning, DunningSettings};
use billhook_worker::email::Mailer;
use billhook_worker::notify::Outbox;
use billhook_worker::queue::{JobError, JobKind as _};
use serde_json::Value;
use sqlx::PgPool;

/// The context a worker with default settings and no Stripe key or notice URL would use.
pub fn context() -> Context {
    Context {
        outbox: Outbox::disabled(),
        ledger: LedgerRule::MinorUnits,
        stripe: None,
        mailer: Mailer {
            max_attempts: 5,
            payment_failed_hold: std::time::Duration::from_secs(120),
        },
        dunning: Dunning {
            schedule: DunningSettings::default().schedule,
            max_attempts: 5,
        },
    }
}

pub struct Applier {
    pub pool: PgPool,
    job: ProcessEventJob,
}

impl Applier {
    pub fn new(pool: &PgPool, context: Context) -> Self {
        Self {
            pool: pool.clone(),
            job: ProcessEventJob::new(pool.clone(), EventMetrics::new(), context, u32::MAX),
        }
    }

    /// Stores `event` as the receiver would (a redelivery stores nothing new) and runs its
    /// ProcessEvent job once, as a worker would for each delivery's job. Returns the event's
    /// status afterwards.
    pub async fn deliver(&self, event: &Value) -> Result<String, JobError> {
        let id = store(&self.pool, event).await;
        let event_id = EventId::parse(&id).unwrap_or_else(|e| panic!("event id {id}: {e}"));
        self.job.run(ProcessEvent::new(event_id)).await?;
        let status: String = sqlx::query_scalar("SELECT status FROM webhook_events WHERE id = $1")
            .bind(&id)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("status of {id}: {e}"));
        Ok(status)
    }
}

/// Stores `event` through the receiver's own ingest transaction (event row and ProcessEvent
/// job), as a verified delivery would; a redelivery stores nothing new. Returns its id.
pub async fn store(pool: &PgPool, event: &Value) -> String {
    let body = crate::fixtures::to_body(event);
    let envelope = Envelope::parse(&body).unwrap_or_else(|e| panic!("the event's envelope: {e}"));
    let verified = Verified {
        timestamp: crate::fixtures::unix_now(),
        secret_label: "test".to_owned(),
    };
    let id = envelope.id.as_str().to_owned();
    let delivery = Delivery {
        handled: event_types::is_handled(&envelope.event_type),
        envelope,
        origin: Origin::Webhook(verified),
        body: body.into(),
        headers: serde_json::json!({}),
        trace: billhook_core::jobs::trace_context(),
    };
    ingest::store(pool, &delivery, 5)
        .await
        .unwrap_or_else(|e| panic!("store {id}: {e}"));
    id
}

/// The rows of `sql` as a JSON array of objects (column name → value).
pub async fn rows(pool: &PgPool, sql: &str) -> Value {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]'::jsonb) FROM ({sql}) t"
    )))
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Creates a pending order as the host application does before sending its customer to
/// Checkout (docs/operations.md shows the same statement).
pub async fn create_order(pool: &PgPool, reference: &str, checkout_ref: &str) {
    sqlx::query("INSERT INTO orders (reference, checkout_ref) VALUES ($1, $2)")
        .bind(reference)
        .bind(checkout_ref)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("create order {reference}: {e}"));
}

/// Everything the billing handlers decide, without what legitimately depends on delivery
/// order: which event was stale, audit history, times of writing, how refund debits were split
/// into steps, and the emails and dunning runs, which follow the order by design (a failure
/// delivered after the payment that cured it is stale: it opens no run and mails no one). Two
/// deliveries of the same story must give equal snapshots.
pub async fn snapshot(pool: &PgPool) -> Value {
    let queries = [
        (
            "customers",
            "SELECT id, email, name, deleted, object, stripe_version, last_event_id FROM customers ORDER BY id",
        ),
        (
            "payment_methods",
            "SELECT id, customer_id, type, object, stripe_version, last_event_id FROM payment_methods ORDER BY id",
        ),
        (
            "subscriptions",
            "SELECT id, customer_id, status, cancel_at_period_end, current_period_start, current_period_end, trial_end, canceled_at, ended_at, object, stripe_version, last_event_id FROM subscriptions ORDER BY id",
        ),
        (
            "subscription_items",
            "SELECT * FROM subscription_items ORDER BY id",
        ),
        (
            "invoices",
            "SELECT id, customer_id, subscription_id, payment_intent_id, status, amount_due, amount_paid, amount_remaining, attempt_count, paid_at, object, stripe_version, last_event_id FROM invoices ORDER BY id",
        ),
        (
            "payments",
            "SELECT id, kind, payment_intent_id, customer_id, amount, amount_received, amount_refunded, status, failure_code, object, stripe_version, last_event_id FROM payments ORDER BY id",
        ),
        (
            "refunds",
            "SELECT id, charge_id, payment_intent_id, amount, status, object, last_event_id FROM refunds ORDER BY id",
        ),
        (
            "checkout_sessions",
            "SELECT id, mode, status, payment_status, customer_id, order_reference, payment_intent_id, subscription_id, amount_total, object, stripe_version, last_event_id FROM checkout_sessions ORDER BY id",
        ),
        (
            "orders",
            "SELECT reference, checkout_ref, payment_intent_id, customer_id, customer_email, amount, currency, status, amount_refunded, failure_reason, created_by, paid_at IS NOT NULL AS paid FROM orders ORDER BY reference, checkout_ref",
        ),
        (
            "ledger_balances",
            "SELECT customer_id, unit, balance FROM ledger_balances ORDER BY customer_id, unit",
        ),
        (
            "ledger_credits",
            "SELECT customer_id, kind, amount, unit FROM ledger_entries WHERE kind <> 'refund_debit' ORDER BY kind, customer_id",
        ),
        (
            "entitlements",
            "SELECT * FROM entitlements ORDER BY customer_id, subscription_id, price_id",
        ),
        (
            "once_per_order_notices",
            "SELECT type, count(*) AS n FROM app_notifications WHERE type IN ('order.paid', 'order.cancelled') GROUP BY type ORDER BY type",
        ),
    ];
    let mut snapshot = serde_json::Map::new();
    for (name, sql) in queries {
        snapshot.insert(name.to_owned(), rows(pool, sql).await);
    }
    Value::Object(snapshot)
}

/// Empties every table the billing handlers write, so one database can replay many orders.
pub async fn reset(pool: &PgPool) {
    sqlx::raw_sql(
        "TRUNCATE webhook_events, customers, payment_methods, subscription_items, subscriptions, invoices,
                  payments, refunds, checkout_sessions, orders, ledger_entries, app_notifications,
                  audit_log, emails, dunning_runs, apalis.jobs",
    )
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("reset: {e}"));
}
