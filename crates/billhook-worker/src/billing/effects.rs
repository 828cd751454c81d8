//! What handlers share beyond the mirror: locks on business objects, and the follow-up work
//! an event sets off (a notice to the application, an email to the customer), each enqueued
//! in the event's transaction and at most once.

use serde_json::Value;
use sqlx::PgConnection;

use super::context::Context;
use super::event::Event;
use crate::email::{NewEmail, Template};
use crate::queue::JobError;
use crate::stripe::fields;

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
                event_id: Some(&event.id),
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
