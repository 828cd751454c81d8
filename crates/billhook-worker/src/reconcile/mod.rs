//! Reconciliation: nothing lost even when webhooks are. A run lists Stripe's Events API over
//! the time since its watermark ([`plan`]) and stores every handled event missing from the
//! inbox exactly as the receiver would ([`store`]), so the worker applies it like any other;
//! the inbox's ids are the truth, never Stripe's `delivery_success`.
//!
//! One run at a time across every process ([`crate::schedule::TaskLock`]); the watermark moves
//! only over windows whose events are stored ([`record`]), so a run stopped half-way loses
//! nothing and the next redoes at most one window. Each run is recorded with its figures and
//! problems ([`record`], `billhook-worker reconcile --status`), counted ([`metrics`]), and
//! checks the webhook endpoint in Stripe when one is named ([`endpoint`]).

pub mod endpoint;
pub mod metrics;
pub mod plan;
pub mod record;
pub mod settings;
pub mod store;

use billhook_core::stripe::event_types;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::Instrument as _;

use crate::schedule::{Busy, TaskLock};
use crate::stripe::StripeApi;
use crate::stripe::list::{ListError, Pager};
use metrics::ReconcileMetrics;
use settings::ReconcileSettings;

/// The task's name: its lock and its log lines.
pub const TASK: &str = "reconcile";

/// Stripe takes at most this many names in `types[]`.
const TYPES_PER_REQUEST: usize = 20;

/// A run over more windows than this logs its progress every this many (a day of hours).
const PROGRESS_EVERY: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The daemon's schedule: skipped when another process ran recently.
    Schedule,
    /// `billhook-worker reconcile`: always runs (unless one is in progress).
    Command,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Command => "command",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Start here instead of at the watermark.
    pub since: Option<DateTime<Utc>>,
    /// List and report what is missing; store nothing, move nothing.
    pub dry_run: bool,
}

/// What a finished run did.
#[derive(Debug)]
pub struct Summary {
    pub run: i64,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub pages: usize,
    pub seen: usize,
    pub recovered: usize,
    /// The first recovered ids (at most [`record::SAMPLE`]).
    pub sample: Vec<String>,
    pub problems: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug)]
pub enum Outcome {
    Ran(Summary),
    /// A scheduled run found nothing to do: why.
    Skipped(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The run started and failed; it is recorded with this message.
    #[error("reconciliation run {run} failed: {message}")]
    Failed { run: i64, message: String },
    #[error("reconciliation cannot use the database")]
    Database(#[from] sqlx::Error),
}

/// Runs reconciliation against Stripe's API for one database.
#[derive(Clone)]
pub struct Reconciler {
    pub pool: PgPool,
    pub api: StripeApi,
    pub settings: ReconcileSettings,
    pub metrics: ReconcileMetrics,
}

impl Reconciler {
    /// One run, if no other is in progress (and, for the schedule, if none ran within the
    /// interval).
    pub async fn run(&self, trigger: Trigger, options: &Options) -> Result<Outcome, RunError> {
        let lock = match TaskLock::try_acquire(&self.pool, TASK).await? {
            Ok(lock) => lock,
            Err(_) if trigger == Trigger::Schedule => {
                return Ok(Outcome::Skipped("another process is reconciling"));
            }
            Err(busy) => return Err(busy.into()),
        };
        let result = self.locked(trigger, options).await;
        lock.release().await;
        result
    }

    async fn locked(&self, trigger: Trigger, options: &Options) -> Result<Outcome, RunError> {
        let abandoned = record::interrupt_abandoned(&self.pool).await?;
        if abandoned > 0 {
            tracing::warn!(
                runs = abandoned,
                "an earlier reconciliation run stopped half-way; this run picks up after its last stored window"
            );
        }
        if trigger == Trigger::Schedule && !self.due().await? {
            return Ok(Outcome::Skipped(
                "another process reconciled within the interval",
            ));
        }
        let watermark = record::watermark(&self.pool).await?;
        let history_start = match (watermark, options.since) {
            (None, None) => record::history_start(&self.pool).await?,
            _ => None,
        };
        let plan = plan::plan(&plan::Inputs {
            now: Utc::now(),
            watermark,
            history_start,
            since: options.since,
            overlap: self.settings.overlap,
            grace: self.settings.grace,
        });
        for problem in &plan.problems {
            tracing::error!(problem = %problem, "reconciliation");
        }
        let run = record::start(&self.pool, trigger.as_str(), options.dry_run, &plan).await?;
        let span = tracing::info_span!(
            "reconcile",
            run,
            trigger = trigger.as_str(),
            dry_run = options.dry_run
        );
        let mut summary = Summary {
            run,
            since: plan.since,
            until: plan.until,
            pages: 0,
            seen: 0,
            recovered: 0,
            sample: Vec::new(),
            problems: plan.problems.clone(),
            dry_run: options.dry_run,
        };
        let result = self
            .list(&plan, options.dry_run, &mut summary)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        let error = result.err();
        record::finish(&self.pool, run, error.as_deref()).await?;
        let outcome = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        self.metrics
            .run_finished(outcome, summary.recovered, summary.problems.len());
        self.metrics.refresh(&self.pool).await;
        if let Some(message) = error {
            tracing::error!(error = %message, pages = summary.pages, recovered = summary.recovered,
                "reconciliation failed");
            return Err(RunError::Failed { run, message });
        }
        if summary.recovered > 0 {
            tracing::warn!(
                recovered = summary.recovered,
                first = ?summary.sample,
                dry_run = options.dry_run,
                "reconciliation found events that webhooks did not deliver"
            );
        }
        tracing::info!(pages = summary.pages, seen = summary.seen, recovered = summary.recovered,
            since = %plan.since.to_rfc3339(), until = %plan.until.to_rfc3339(), "reconciliation finished");
        Ok(Outcome::Ran(summary))
    }

    /// Whether the schedule should run now: no run started within the interval (a tenth
    /// less, so the process that ran last is not skipped by its own timer's drift).
    async fn due(&self) -> Result<bool, sqlx::Error> {
        let Some(last) = record::last_started(&self.pool).await? else {
            return Ok(true);
        };
        let interval = chrono::Duration::from_std(self.settings.interval.mul_f64(0.9))
            .unwrap_or(chrono::Duration::MAX);
        Ok(Utc::now() - last >= interval)
    }

    /// Lists the plan's windows, endpoint first; `Err` is the message recorded with the run.
    async fn list(
        &self,
        plan: &plan::Plan,
        dry_run: bool,
        summary: &mut Summary,
    ) -> Result<(), String> {
        if let Some(wanted) = &self.settings.webhook_endpoint {
            let report = endpoint::check(&self.api, wanted)
                .await
                .map_err(stripe_error)?;
            for problem in &report.problems {
                tracing::error!(problem = %problem, "reconciliation: webhook endpoint");
            }
            record::endpoint(&self.pool, summary.run, &report.endpoint, &report.problems)
                .await
                .map_err(database_error)?;
            self.metrics.endpoint(
                report.disabled || report.endpoint.get("found") == Some(&false.into()),
                report.missing_types.len(),
            );
            summary.problems.extend(report.problems);
        }
        let windows = plan.windows.len();
        for (done, (from, to)) in plan.windows.iter().enumerate() {
            for types in event_types::HANDLED.chunks(TYPES_PER_REQUEST) {
                self.list_window(*from, *to, types, dry_run, summary)
                    .await?;
            }
            // A long catch-up (days of windows) says how far it has got, once a listed day.
            if windows > PROGRESS_EVERY && (done + 1) % PROGRESS_EVERY == 0 {
                tracing::info!(through = %to.to_rfc3339(), windows_done = done + 1, windows,
                    pages = summary.pages, recovered = summary.recovered, "reconciliation progress");
            }
            if !dry_run {
                record::advance(&self.pool, *to)
                    .await
                    .map_err(database_error)?;
                record::covered(&self.pool, summary.run, *to)
                    .await
                    .map_err(database_error)?;
            }
        }
        if plan.windows.is_empty() && !dry_run {
            // Nothing to list yet (an empty inbox, or a grace longer than the time since the
            // watermark): the watermark still starts here, so later runs have one.
            record::advance(&self.pool, plan.until)
                .await
                .map_err(database_error)?;
        }
        Ok(())
    }

    async fn list_window(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        types: &[&str],
        dry_run: bool,
        summary: &mut Summary,
    ) -> Result<(), String> {
        let mut query = vec![
            ("created[gte]", from.timestamp().to_string()),
            ("created[lt]", to.timestamp().to_string()),
        ];
        query.extend(types.iter().map(|t| ("types[]", (*t).to_owned())));
        let mut pager = Pager::new(&self.api, "/v1/events", query, None);
        while let Some(page) = pager.next().await.map_err(stripe_error)? {
            let outcome = store::store_page(
                &self.pool,
                &page,
                dry_run,
                self.settings.process_event_max_attempts,
            )
            .await
            .map_err(|e| format!("cannot store recovered events: {e:#}"))?;
            for problem in &outcome.unreadable {
                tracing::error!(problem = %problem, "reconciliation");
            }
            if !outcome.unreadable.is_empty() {
                record::problems(&self.pool, summary.run, &outcome.unreadable)
                    .await
                    .map_err(database_error)?;
            }
            record::page(&self.pool, summary.run, outcome.seen, &outcome.recovered)
                .await
                .map_err(database_error)?;
            summary.pages += 1;
            summary.seen += outcome.seen;
            summary.recovered += outcome.recovered.len();
            let room = record::SAMPLE.saturating_sub(summary.sample.len());
            summary
                .sample
                .extend(outcome.recovered.into_iter().take(room));
            summary.problems.extend(outcome.unreadable);
            tracing::debug!(
                page = summary.pages,
                seen = outcome.seen,
                "reconciliation page"
            );
        }
        Ok(())
    }
}

fn stripe_error(e: ListError) -> String {
    e.to_string()
}

fn database_error(e: sqlx::Error) -> String {
    format!("database: {e}")
}
