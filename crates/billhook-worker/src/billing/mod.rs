//! Applying an event to the billing mirror and the business state: the dispatch from event
//! type to handler. Each handler runs inside the ProcessEvent transaction and writes nothing
//! outside it; follow-up work (notices to the application) is enqueued in that transaction.

pub mod checkout;
pub mod customer;
pub mod fields;
pub mod invoice;
pub mod ledger;
pub mod order;
pub mod payment;
pub mod payment_method;
pub mod settings;
pub mod subscription;
pub mod version;

use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;
use sqlx::PgConnection;

use crate::audit::AuditEntry;
use crate::dunning::Dunning;
use crate::email::{Mailer, NewEmail, Template};
use crate::events::StoredEvent;
use crate::notify::Outbox;
use crate::runner::JobError;
use crate::stripe_api::StripeApi;

pub use ledger::LedgerRule;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// An older event than the state already stored: recorded, not applied.
    Stale,
    /// No handler for this type.
    Ignored,
}

/// What handlers need besides the transaction and the event.
#[derive(Clone)]
pub struct Context {
    /// Notices to the host application.
    pub outbox: Outbox,
    /// How paid amounts and refunds become ledger entries.
    pub ledger: LedgerRule,
    /// Stripe's API, when a key is configured: settles same-second ties.
    pub stripe: Option<StripeApi>,
    /// Emails to customers.
    pub mailer: Mailer,
    /// Opens dunning runs for unpaid subscription invoices.
    pub dunning: Dunning,
}

/// The parts of a stored event handlers read, and the audit entries applying it produced.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    #[serde(default)]
    pub api_version: Option<String>,
    pub data: EventData,
    /// Filled by [`Event::audit`], written by `events::finish`.
    #[serde(skip)]
    audit: Mutex<Vec<AuditEntry>>,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: Value,
}

impl Event {
    pub fn parse(stored: &StoredEvent) -> Result<Self, JobError> {
        serde_json::from_slice(&stored.body).map_err(|e| {
            JobError::Permanent(anyhow::Error::new(e).context("the stored event cannot be read"))
        })
    }

    /// Records a state change applying this event made. The entries go to `audit_log` in the
    /// statement that marks the event finished (`events::finish`): in the same transaction as
    /// the change, without a round trip of their own.
    pub fn audit(&self, entity: &str, entity_id: &str, action: &str, detail: Value) {
        self.audit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(AuditEntry {
                entity: entity.to_owned(),
                entity_id: entity_id.to_owned(),
                action: action.to_owned(),
                detail,
            });
    }

    /// The audit entries recorded so far, in order; they are handed over once.
    pub fn take_audit(&self) -> Vec<AuditEntry> {
        std::mem::take(&mut *self.audit.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The Stripe object the event is about: events for one object are applied one at a time.
    pub fn object_id(&self) -> Option<&str> {
        self.data.object.get("id").and_then(Value::as_str)
    }
}

pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    match event.event_type.as_str() {
        "customer.created" | "customer.updated" | "customer.deleted" => {
            customer::apply(conn, ctx, event).await
        }
        "payment_method.attached" | "payment_method.detached" => {
            payment_method::apply(conn, ctx, event).await
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.paused"
        | "customer.subscription.resumed"
        | "customer.subscription.trial_will_end" => subscription::apply(conn, ctx, event).await,
        "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
            invoice::apply(conn, ctx, event).await
        }
        "checkout.session.completed" | "checkout.session.expired" => {
            checkout::apply(conn, ctx, event).await
        }
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            payment::apply_payment_intent(conn, ctx, event).await
        }
        "charge.refunded" => payment::apply_charge(conn, ctx, event).await,
        _ => Ok(Applied::Ignored),
    }
}

/// Takes a transaction-scoped advisory lock on `key`, so that work on one business object
/// (an order, say, reached from a session, a PaymentIntent and a charge) never interleaves.
pub async fn lock_key(conn: &mut PgConnection, key: &str) -> Result<(), JobError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Enqueues a notice of `kind` for the host application, once per (`kind`, `key`): a
/// redelivered or replayed event cannot send it twice.
pub async fn notify(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
    kind: &str,
    key: &str,
    data: Value,
) -> Result<bool, JobError> {
    let dedupe_key = format!("{kind}:{key}");
    ctx.outbox
        .enqueue(
            conn,
            crate::notify::Notice {
                kind,
                dedupe_key: &dedupe_key,
                event_id: &event.id,
                data,
            },
        )
        .await
}

/// An email a handler decides to send.
pub struct Outgoing<'a> {
    pub template: Template,
    /// With the template, the email's identity: one email per (source, template).
    pub source: &'a str,
    /// The Stripe customer, for the mirror's address and name.
    pub customer: Option<&'a str>,
    /// An address known better than the event's (an order's, say).
    pub recipient: Option<&'a str>,
    /// The template's variables.
    pub data: Value,
    /// Held until then (see `Mailer::payment_failed_hold`); `None`: sent at once.
    pub send_after: Option<chrono::DateTime<chrono::Utc>>,
}

/// Enqueues an email to the customer about `event`, once per (source, template). The recipient
/// is `recipient` if given, else the address the event's object carries (receipt_email,
/// customer_email, customer_details.email…), else the customer's in the mirror; with none, the
/// email is recorded as skipped. `data` gets the customer's name for the greeting.
pub async fn email(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
    out: Outgoing<'_>,
) -> Result<bool, JobError> {
    let Outgoing {
        template,
        source,
        customer,
        recipient,
        mut data,
        send_after,
    } = out;
    let known: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT email, name FROM customers WHERE id = $1")
            .bind(customer)
            .fetch_optional(&mut *conn)
            .await?;
    let (mirror_email, name) = known.unwrap_or_default();
    let recipient = recipient
        .or_else(|| fields::email_of(&event.data.object))
        .map(str::to_owned)
        .or(mirror_email);
    if data.get("name").is_none_or(Value::is_null) {
        data["name"] = name
            .or_else(|| {
                fields::str_at(&event.data.object, "customer_details.name").map(str::to_owned)
            })
            .into();
    }
    ctx.mailer
        .enqueue(
            conn,
            NewEmail {
                template,
                source,
                recipient: recipient.as_deref(),
                event_id: Some(&event.id),
                data,
                send_after,
            },
        )
        .await
}
