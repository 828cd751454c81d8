//! One step of a dunning run. In one transaction: lock the run; do nothing if it is over or
//! the step is done; re-check the invoice and the subscription (the mirror, and Stripe's API
//! when a key is configured) and stop the run if the invoice is paid or voided or the
//! subscription already cancelled; otherwise act (an email, or the cancellation), record the
//! step and schedule the next.

use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use super::{Dunning, STEPS};
use crate::billing::audit;
use crate::email::{Mailer, NewEmail, Template};
use crate::queue::jobs::DunningStep;
use crate::queue::{JobError, JobKind};
use crate::stripe::StripeApi;
use crate::stripe::fields;

pub struct DunningStepJob {
    pub pool: PgPool,
    pub dunning: Dunning,
    pub mailer: Mailer,
    pub stripe: Option<StripeApi>,
}

#[derive(Debug, sqlx::FromRow)]
struct Run {
    id: String,
    invoice_id: String,
    subscription_id: String,
    customer_id: String,
    state: String,
    steps_done: i32,
    started_at: chrono::DateTime<chrono::Utc>,
}

#[derive(sqlx::FromRow)]
struct EmailFacts {
    name: Option<String>,
    email: Option<String>,
    amount: Option<i64>,
    currency: Option<String>,
    pay_url: Option<String>,
    failure: Option<String>,
}

/// Why a run stops before its end.
enum Verdict {
    Continue,
    Stop { state: &'static str, reason: String },
}

impl JobKind for DunningStepJob {
    type Args = DunningStep;

    fn event_id(_: &Value) -> Option<String> {
        None
    }

    #[tracing::instrument(name = "dunning_step", skip_all, fields(run_id = tracing::field::Empty, step = tracing::field::Empty))]
    async fn run(&self, args: DunningStep) -> Result<(), JobError> {
        let DunningStep::V1 { run_id, step } = args;
        let span = tracing::Span::current();
        span.record("run_id", run_id.as_str());
        span.record("step", step);
        let mut tx = self.pool.begin().await?;
        let run: Run = sqlx::query_as(
            "SELECT id, invoice_id, subscription_id, customer_id, state, steps_done, started_at
               FROM dunning_runs WHERE id = $1 FOR UPDATE",
        )
        .bind(&run_id)
        .fetch_optional(&mut *tx)
        .await?
        .with_context(|| format!("no dunning run {run_id}"))
        .map_err(JobError::Permanent)?;
        if run.state != "active" || run.steps_done as u32 > step {
            tracing::info!(state = %run.state, steps_done = run.steps_done, "nothing to do");
            return Ok(());
        }
        if let Verdict::Stop { state, reason } = self.recheck(&mut tx, &run).await? {
            sqlx::query(
                "UPDATE dunning_runs SET state = $2, stop_reason = $3, next_step_at = NULL, updated_at = now(),
                        history = history || jsonb_build_array(jsonb_build_object('step', $4::int, 'action', $2, 'reason', $3::text, 'at', now()))
                  WHERE id = $1",
            )
            .bind(&run.id)
            .bind(state)
            .bind(&reason)
            .bind(step as i32)
            .execute(&mut *tx)
            .await?;
            audit::record_by(
                &mut tx,
                "dunning",
                "dunning_run",
                &run.id,
                state,
                json!({ "reason": reason }),
            )
            .await?;
            tx.commit().await?;
            tracing::info!(state, reason, "dunning run over");
            return Ok(());
        }
        let data = self.email_data(&mut tx, &run).await?;
        let action = STEPS.get(step as usize).copied().unwrap_or("none");
        match action {
            "payment_failed" => {
                self.email(&mut tx, &run, step, Template::PaymentFailed, data)
                    .await?
            }
            "reminder" => {
                self.email(&mut tx, &run, step, Template::DunningReminder, data)
                    .await?
            }
            "final_warning" => {
                self.email(&mut tx, &run, step, Template::FinalWarning, data)
                    .await?
            }
            "cancel" => self.cancel(&mut tx, &run, data).await?,
            _ => {
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "dunning has no step {step}"
                )));
            }
        }
        let next = step + 1;
        let next_at = (next < STEPS.len() as u32)
            .then(|| run.started_at + self.dunning.schedule.offset(next));
        let final_state = if action == "cancel" {
            "canceled"
        } else {
            "active"
        };
        sqlx::query(
            "UPDATE dunning_runs SET steps_done = $2, state = $3, next_step_at = $4, updated_at = now(),
                    history = history || jsonb_build_array(jsonb_build_object('step', $5::int, 'action', $6::text, 'at', now()))
              WHERE id = $1",
        )
        .bind(&run.id)
        .bind(next as i32)
        .bind(final_state)
        .bind(next_at)
        .bind(step as i32)
        .bind(action)
        .execute(&mut *tx)
        .await?;
        if let Some(at) = next_at {
            self.dunning
                .schedule_step(&mut tx, &run.id, next, at)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(action, "dunning step done");
        Ok(())
    }

    async fn record_failure(
        &self,
        _: &mut PgConnection,
        _: &Value,
        _: u32,
        _: &str,
        _: bool,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

impl DunningStepJob {
    /// The invoice and the subscription as the mirror knows them, and as Stripe's API says
    /// when a key is configured.
    async fn recheck(&self, conn: &mut PgConnection, run: &Run) -> Result<Verdict, JobError> {
        let mirror: (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT (SELECT status FROM invoices WHERE id = $1), (SELECT status FROM subscriptions WHERE id = $2)",
        )
        .bind(&run.invoice_id)
        .bind(&run.subscription_id)
        .fetch_one(&mut *conn)
        .await?;
        let (mut invoice, mut subscription) = mirror;
        if let Some(api) = &self.stripe {
            let fetched = api
                .retrieve(&format!("/v1/invoices/{}", run.invoice_id), None)
                .await?;
            invoice = fields::str_at(&fetched, "status")
                .map(str::to_owned)
                .or(invoice);
            let fetched = api
                .retrieve(&format!("/v1/subscriptions/{}", run.subscription_id), None)
                .await?;
            subscription = fields::str_at(&fetched, "status")
                .map(str::to_owned)
                .or(subscription);
        }
        Ok(match (invoice.as_deref(), subscription.as_deref()) {
            (Some("paid"), _) => Verdict::Stop {
                state: "recovered",
                reason: "invoice paid".into(),
            },
            (Some(status @ ("void" | "uncollectible")), _) => Verdict::Stop {
                state: "stopped",
                reason: format!("invoice {status}"),
            },
            (_, Some(status @ ("canceled" | "incomplete_expired"))) => Verdict::Stop {
                state: "stopped",
                reason: format!("subscription already {status}"),
            },
            _ => Verdict::Continue,
        })
    }

    /// The variables of the run's emails, and its recipient.
    async fn email_data(
        &self,
        conn: &mut PgConnection,
        run: &Run,
    ) -> Result<(Option<String>, Value), JobError> {
        let row: EmailFacts =
            sqlx::query_as(
                "SELECT c.name, coalesce(i.customer_email, c.email) AS email, i.amount_due AS amount, i.currency,
                        i.object->>'hosted_invoice_url' AS pay_url,
                        (SELECT coalesce(p.failure_message, p.failure_code) FROM payments p WHERE p.id = i.payment_intent_id) AS failure
                   FROM (SELECT 1) one
                   LEFT JOIN invoices i ON i.id = $1
                   LEFT JOIN customers c ON c.id = $2",
            )
            .bind(&run.invoice_id)
            .bind(&run.customer_id)
            .fetch_one(&mut *conn)
            .await?;
        let EmailFacts {
            name,
            email,
            amount,
            currency,
            pay_url,
            failure,
        } = row;
        let cancel_on = (run.started_at + self.dunning.schedule.offset(3))
            .format("%Y-%m-%d")
            .to_string();
        let data = json!({
            "name": name, "amount": amount, "currency": currency, "invoice": run.invoice_id,
            "reference": run.invoice_id, "description": format!("invoice {}", run.invoice_id),
            "pay_url": pay_url, "failure_reason": failure,
            "cancel_on": cancel_on, "subscription": run.subscription_id,
            "reason": "because its invoice stayed unpaid",
        });
        Ok((email, data))
    }

    async fn email(
        &self,
        conn: &mut PgConnection,
        run: &Run,
        step: u32,
        template: Template,
        (recipient, data): (Option<String>, Value),
    ) -> Result<(), JobError> {
        let source = format!("{}:{step}", run.id);
        self.mailer
            .enqueue(
                conn,
                NewEmail {
                    template,
                    source: &source,
                    recipient: recipient.as_deref(),
                    event_id: None,
                    data,
                    send_after: None,
                },
            )
            .await?;
        Ok(())
    }

    /// Cancels the subscription in Stripe (idempotently), then locally, then tells the
    /// customer. Nothing is cancelled locally unless Stripe cancelled it.
    async fn cancel(
        &self,
        conn: &mut PgConnection,
        run: &Run,
        (recipient, data): (Option<String>, Value),
    ) -> Result<(), JobError> {
        let api = self
            .stripe
            .as_ref()
            .context("cancelling a subscription needs BILLHOOK_STRIPE_API_KEY; set it, then requeue this step")
            .map_err(JobError::Permanent)?;
        let path = format!("/v1/subscriptions/{}", run.subscription_id);
        let cancelled = api
            .delete(&path, &format!("billhook-dunning-{}", run.id))
            .await?;
        let status = fields::str_at(&cancelled, "status").unwrap_or("unknown");
        if status != "canceled" {
            return Err(JobError::Retryable(anyhow::anyhow!(
                "Stripe answered the cancellation with status {status}"
            )));
        }
        sqlx::query(
            "UPDATE subscriptions SET status = 'canceled', status_since = now(),
                    canceled_at = coalesce(canceled_at, now()), updated_at = now()
              WHERE id = $1 AND status <> 'canceled'",
        )
        .bind(&run.subscription_id)
        .execute(&mut *conn)
        .await?;
        audit::record_by(
            conn,
            "dunning",
            "subscription",
            &run.subscription_id,
            "cancelled_by_dunning",
            json!({ "run": run.id }),
        )
        .await?;
        // The same source as the email for `customer.subscription.deleted`: one email in all.
        self.mailer
            .enqueue(
                conn,
                NewEmail {
                    template: Template::SubscriptionCancelled,
                    source: &run.subscription_id,
                    recipient: recipient.as_deref(),
                    event_id: None,
                    data,
                    send_after: None,
                },
            )
            .await?;
        Ok(())
    }
}
