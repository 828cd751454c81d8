//! Dunning: chasing an unpaid subscription invoice. `invoice.payment_failed` opens one run per
//! invoice (a later failure of the same invoice continues it); DunningStep jobs, scheduled in
//! the job queue so they survive restarts, send the payment-failed email, a reminder and a
//! final warning, then cancel the subscription through Stripe's API. `invoice.paid` marks the
//! run recovered, and its remaining steps do nothing.
//!
//! Steps are chained: each step, in the transaction that records it, schedules the next at
//! `started_at + schedule[n]`, so they can never run out of order.

pub mod job;
pub mod settings;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;

use crate::billing::audit;
use crate::queue::jobs::DunningStep;
use crate::queue::{self, JobError};
pub use settings::{DunningSettings, Schedule};

/// The steps of a run, in order.
pub const STEPS: [&str; 4] = ["payment_failed", "reminder", "final_warning", "cancel"];

/// What the billing handlers need to open runs.
#[derive(Debug, Clone)]
pub struct Dunning {
    pub schedule: Schedule,
    pub max_attempts: u32,
}

/// An unpaid subscription invoice, as the failure event shows it.
pub struct Failure<'a> {
    pub invoice_id: &'a str,
    pub subscription_id: &'a str,
    pub customer_id: &'a str,
    pub event_id: &'a str,
    pub failed_at: DateTime<Utc>,
}

impl Dunning {
    /// Opens the invoice's run and schedules its first step, unless it has one already.
    /// Returns the run id when a run was opened.
    pub async fn open(
        &self,
        conn: &mut PgConnection,
        failure: &Failure<'_>,
    ) -> Result<Option<String>, JobError> {
        let id = format!("dun_{}", ulid::Ulid::generate());
        let first = failure.failed_at + self.schedule.offset(0);
        let opened: Option<String> = sqlx::query_scalar(
            "INSERT INTO dunning_runs (id, invoice_id, subscription_id, customer_id, started_at, next_step_at, event_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (invoice_id) DO NOTHING RETURNING id",
        )
        .bind(&id)
        .bind(failure.invoice_id)
        .bind(failure.subscription_id)
        .bind(failure.customer_id)
        .bind(failure.failed_at)
        .bind(first)
        .bind(failure.event_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(id) = opened else {
            return Ok(None);
        };
        self.schedule_step(conn, &id, 0, first).await?;
        audit::record(
            conn,
            failure.event_id,
            "dunning_run",
            &id,
            "opened",
            json!({ "invoice": failure.invoice_id, "subscription": failure.subscription_id }),
        )
        .await?;
        Ok(Some(id))
    }

    /// Pushes step `step` of run `run_id`, due at `at`.
    pub async fn schedule_step(
        &self,
        conn: &mut PgConnection,
        run_id: &str,
        step: u32,
        at: DateTime<Utc>,
    ) -> Result<(), JobError> {
        let args = DunningStep::V1 {
            run_id: run_id.to_owned(),
            step,
        };
        let key = format!("{run_id}:{step}");
        queue::push(conn, &args, &key, self.max_attempts, Some(at))
            .await
            .map_err(JobError::from)
    }
}

/// Marks the invoice's active run recovered (`invoice.paid`); its remaining steps do nothing.
pub async fn recover(
    conn: &mut PgConnection,
    invoice_id: &str,
    event_id: &str,
) -> Result<(), JobError> {
    let recovered: Option<String> = sqlx::query_scalar(
        "UPDATE dunning_runs SET state = 'recovered', next_step_at = NULL, stop_reason = 'invoice paid',
                history = history || jsonb_build_array(jsonb_build_object('action', 'recovered', 'at', now())),
                updated_at = now()
          WHERE invoice_id = $1 AND state = 'active' RETURNING id",
    )
    .bind(invoice_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(run) = recovered {
        audit::record(
            conn,
            event_id,
            "dunning_run",
            &run,
            "recovered",
            json!({ "invoice": invoice_id }),
        )
        .await?;
    }
    Ok(())
}
