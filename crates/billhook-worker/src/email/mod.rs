//! Emails: an outbox in `emails`, sent by SendEmail jobs over SMTP (lettre), or written as .eml
//! files when no SMTP server is configured.
//!
//! Lifecycle: [`Mailer::enqueue`] writes the row (and its job) inside the transaction that
//! decided to send it; one row per (source, template), so a redelivered or re-applied event
//! sends nothing more → the job renders the template and sends → `sent`, or `dead` with a dead
//! letter once attempts run out (requeue sends it). No recipient address → `skipped`.
//! Delivery is at least once: a crash between the SMTP server's acceptance and the `sent`
//! mark sends again, with the same Message-ID (`<eml_…@billhook>`), which mail clients use
//! to hide the repeat.

pub mod job;
pub mod settings;
pub mod smtp;
pub mod templates;
pub mod transport;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use crate::queue::jobs::SendEmail;
use crate::queue::{self, JobError};
pub use templates::Template;

/// One email for [`Mailer::enqueue`].
#[derive(Debug, Clone)]
pub struct NewEmail<'a> {
    pub template: Template,
    /// What the email is about; with the template, its identity.
    pub source: &'a str,
    pub recipient: Option<&'a str>,
    pub event_id: Option<&'a str>,
    /// The template's variables.
    pub data: Value,
    /// Not sent before this time (`None`: at once). It can be withdrawn meanwhile
    /// ([`withdraw_payment_failed`]).
    pub send_after: Option<DateTime<Utc>>,
}

/// Writes emails and their jobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Mailer {
    pub max_attempts: u32,
    /// `BILLHOOK_EMAIL_PAYMENT_FAILED_HOLD`.
    pub payment_failed_hold: std::time::Duration,
}

impl Mailer {
    /// Stores the email and its SendEmail job inside the caller's transaction. Returns whether
    /// it is new: `false` when this (source, template) exists already, and nothing is written.
    #[tracing::instrument(skip_all, fields(template = email.template.name(), source = email.source))]
    pub async fn enqueue(
        &self,
        conn: &mut PgConnection,
        email: NewEmail<'_>,
    ) -> Result<bool, JobError> {
        let id = format!("eml_{}", ulid::Ulid::generate());
        let status = if email.recipient.is_some() {
            "pending"
        } else {
            "skipped"
        };
        let inserted = sqlx::query(
            "INSERT INTO emails (id, template, source, recipient, data, event_id, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source, template) DO NOTHING",
        )
        .bind(&id)
        .bind(email.template.name())
        .bind(email.source)
        .bind(email.recipient)
        .bind(&email.data)
        .bind(email.event_id)
        .bind(status)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            return Ok(false);
        }
        if email.recipient.is_none() {
            tracing::info!("no recipient address known: email recorded as skipped");
            return Ok(true);
        }
        let args = SendEmail::V1 {
            email_id: id.clone(),
            event_id: email.event_id.map(str::to_owned),
        };
        queue::push(conn, &args, &id, self.max_attempts, email.send_after).await?;
        Ok(true)
    }
}

/// Withdraws the emails about the failed payment `payment_intent` that are still waiting
/// (`NewEmail::send_after`): the invoice it paid has turned up, and that invoice's dunning run
/// tells the customer. Returns the ids of the emails withdrawn (now `skipped`).
pub async fn withdraw_payment_failed(
    conn: &mut PgConnection,
    payment_intent: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "UPDATE emails SET status = 'skipped',
                last_error = 'withdrawn: the payment belongs to an invoice, whose dunning tells the customer'
          WHERE template = $1 AND status = 'pending' AND data->>'reference' = $2
            AND event_id IS NOT NULL -- an event's email, never one of dunning's own steps
         RETURNING id",
    )
    .bind(Template::PaymentFailed.name())
    .bind(payment_intent)
    .fetch_all(conn)
    .await
}
