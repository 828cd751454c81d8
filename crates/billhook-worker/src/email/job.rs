//! Send one stored email: render its template, hand it to the transport, mark it sent.
//!
//! No transaction is held across the SMTP conversation, and the whole conversation has one
//! deadline ([`super::smtp`]). The `sent` mark is written the moment the server accepts the
//! message, before QUIT; only a crash in that one statement's round trip sends it twice. A template that does not render, a
//! recipient that is not an address, or a permanent refusal by the SMTP server (5xx: no such
//! mailbox, say) is a permanent failure (dead letter at once; fix, then requeue); anything
//! else the server or the network does is retried.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use billhook_core::db::errors;
use serde_json::Value;
use sqlx::PgPool;

use super::settings::EmailSettings;
use super::templates::{self, Template};
use super::transport::{Sender, Transport};
use crate::queue::jobs::SendEmail;
use crate::queue::{JobError, JobKind};

pub struct SendEmailJob {
    pool: PgPool,
    transport: Transport,
    /// How long one run holds the email while sending: the whole SMTP deadline and a margin
    /// for recording the delivery. Kept short, because a run killed while sending holds it
    /// for this long, and the job's next run waits for it (the fault suite, with the patience
    /// of `mark_sent` added, saw emails still waiting 45 s after SMTP was back).
    lease: Duration,
    sender: Sender,
    templates: Option<PathBuf>,
}

impl SendEmailJob {
    pub fn new(pool: PgPool, settings: &EmailSettings) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            transport: Transport::from_settings(settings)?,
            lease: settings.smtp_timeout + LEASE_MARGIN,
            sender: Sender::from_settings(settings)?,
            templates: settings.templates.clone(),
        })
    }
}

impl SendEmailJob {
    /// Takes the email for this run. While another run holds it (sending right now, or killed
    /// while sending: its lease runs out), waits for that run rather than failing an attempt.
    /// False when the other run finished the email meanwhile.
    async fn wait_for_claim(&self, email_id: &str) -> Result<bool, JobError> {
        let give_up = Instant::now() + self.lease;
        loop {
            if claim(&self.pool, email_id, self.lease).await? {
                return Ok(true);
            }
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM emails WHERE id = $1")
                    .bind(email_id)
                    .fetch_optional(&self.pool)
                    .await?;
            if matches!(status.as_deref(), Some("sent" | "skipped")) {
                return Ok(false);
            }
            if Instant::now() >= give_up {
                return Err(JobError::Retryable(anyhow::anyhow!(
                    "another run of this job has been sending the email for longer than its lease"
                )));
            }
            tokio::time::sleep(CLAIM_POLL).await;
        }
    }
}

/// How often a run waiting for another run's lease looks again.
const CLAIM_POLL: Duration = Duration::from_millis(250);

#[derive(sqlx::FromRow)]
struct Stored {
    template: String,
    recipient: Option<String>,
    data: Value,
    status: String,
}

impl JobKind for SendEmailJob {
    type Args = SendEmail;

    fn event_id(args: &Value) -> Option<String> {
        args.get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    #[tracing::instrument(name = "send_email", skip_all, fields(email_id = tracing::field::Empty))]
    async fn run(&self, args: SendEmail) -> Result<(), JobError> {
        let SendEmail::V1 { email_id, .. } = args;
        tracing::Span::current().record("email_id", email_id.as_str());
        let stored: Option<Stored> =
            sqlx::query_as("SELECT template, recipient, data, status FROM emails WHERE id = $1")
                .bind(&email_id)
                .fetch_optional(&self.pool)
                .await?;
        let stored = stored
            .with_context(|| format!("no email {email_id}"))
            .map_err(JobError::Permanent)?;
        if stored.status == "sent" || stored.status == "skipped" {
            tracing::info!(status = %stored.status, "email already finished; nothing to send");
            return Ok(());
        }
        let permanent = JobError::Permanent;
        let template = Template::from_name(&stored.template)
            .with_context(|| format!("unknown template {}", stored.template))
            .map_err(permanent)?;
        let recipient = stored
            .recipient
            .context("the email has no recipient")
            .map_err(permanent)?;
        let rendered = templates::render(template, self.templates.as_deref(), &stored.data)
            .map_err(permanent)?;
        let message = self
            .sender
            .message(&email_id, &recipient, &rendered)
            .map_err(permanent)?;
        if !self.wait_for_claim(&email_id).await? {
            tracing::info!("email finished by another run; nothing to send");
            return Ok(());
        }
        match self.transport.send(message).await {
            Ok(delivered) => {
                // The server has the message: record that before anything else (even QUIT), so
                // that only a crash during this one statement can make a retry send it again.
                mark_sent(&self.pool, &email_id, &rendered.subject).await?;
                tracing::info!(template = template.name(), destination = %delivered.destination, "email sent");
                delivered.close().await;
                Ok(())
            }
            Err(error) => {
                sqlx::query(
                    "UPDATE emails SET attempts = attempts + 1, last_error = $2, sending_until = NULL
                      WHERE id = $1",
                )
                .bind(&email_id)
                .bind(format!("{error:#}"))
                .execute(&self.pool)
                .await?;
                if refused_for_good(&error) {
                    Err(JobError::Permanent(error))
                } else {
                    Err(JobError::Retryable(error))
                }
            }
        }
    }

    /// Keeps the email's attempts equal to the job's (a failure before sending, such as a
    /// template that does not render, counts too) and marks it dead with the job; a requeued
    /// dead email is pending again until it is sent or dies again.
    async fn record_failure(
        &self,
        conn: &mut sqlx::PgConnection,
        args: &Value,
        attempt: u32,
        error: &str,
        dead: bool,
    ) -> anyhow::Result<()> {
        if let Some(id) = args.get("email_id").and_then(Value::as_str) {
            sqlx::query(
                "UPDATE emails SET attempts = greatest(attempts, $3), last_error = $2,
                        status = CASE WHEN $4 THEN 'dead' ELSE 'pending' END
                  WHERE id = $1 AND status IN ('pending', 'dead')",
            )
            .bind(id)
            .bind(error)
            .bind(attempt as i32)
            .bind(dead)
            .execute(conn)
            .await?;
        }
        Ok(())
    }
}

/// Takes the email for one run, for `lease`; false when another run holds it or it is no
/// longer pending.
async fn claim(pool: &PgPool, email_id: &str, lease: Duration) -> Result<bool, JobError> {
    let claimed = sqlx::query(
        "UPDATE emails SET sending_until = now() + make_interval(secs => $2)
          WHERE id = $1 AND status NOT IN ('sent', 'skipped')
            AND (sending_until IS NULL OR sending_until < now())",
    )
    .bind(email_id)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// What the lease allows beyond the SMTP deadline, for recording the delivery.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How long [`mark_sent`] keeps trying while the database is out of reach: long enough for a
/// restart or a failover, so that a delivered message is not sent again.
const MARK_SENT_PATIENCE: Duration = Duration::from_secs(30);

/// Marks the email sent. The message is already delivered, so a failure that a retry can cure
/// is retried here, with growing pauses, rather than by running the job (and sending) again.
async fn mark_sent(pool: &PgPool, email_id: &str, subject: &str) -> Result<(), JobError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let result = sqlx::query(
            "UPDATE emails SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                    subject = $2, message_id = $3, last_error = NULL, sending_until = NULL
              WHERE id = $1",
        )
        .bind(email_id)
        .bind(subject)
        .bind(format!("<{email_id}@billhook>"))
        .execute(pool)
        .await;
        match result {
            Ok(_) => return Ok(()),
            Err(e) if errors::is_unavailable(&e) && started.elapsed() < MARK_SENT_PATIENCE => {
                tracing::warn!(error = %e, "email delivered but not yet marked sent; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The SMTP server answered 5xx: the same message would be refused again.
fn refused_for_good(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<lettre::transport::smtp::Error>()
            .is_some_and(lettre::transport::smtp::Error::is_permanent)
    })
}
