//! Alerts that reach a person: rules ([`rules`]) evaluated every BILLHOOK_ALERT_INTERVAL by
//! `billhook-worker run`, incidents with a lifecycle ([`incident`]), and messages on every
//! configured channel ([`channels`]: email, a Slack-compatible webhook, the application).
//!
//! One evaluation at a time across every worker process (a [`TaskLock`]), and at most one per
//! interval however many processes tick (`scheduled_runs`). Each rule's transition and its
//! messages commit together, so a crash mid-evaluation announces nothing twice and loses
//! nothing: the next evaluation sees the same state and carries on.

pub mod channels;
pub mod incident;
pub mod message;
pub mod post;
pub mod rules;
pub mod settings;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::schedule::TaskLock;
use channels::Channels;
use incident::Transition;
use rules::{Finding, Rule};

/// The task lock's name.
pub const TASK: &str = "alerts";

/// Evaluates the rules and announces what changed.
#[derive(Debug, Clone)]
pub struct Alerts {
    pub pool: PgPool,
    pub channels: Channels,
}

/// What one tick did.
#[derive(Debug)]
pub enum Tick {
    /// Another process holds the lock, or evaluated less than an interval ago.
    Skipped(&'static str),
    Evaluated(Evaluation),
}

/// One evaluation: what each rule saw, and the transitions announced.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    pub transitions: Vec<(Rule, Transition)>,
}

impl Alerts {
    /// The scheduled entry: evaluates at `now` unless another process is evaluating or one
    /// evaluated less than (nearly) an interval ago.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<Tick> {
        let Ok(lock) = TaskLock::try_acquire(&self.pool, TASK).await? else {
            return Ok(Tick::Skipped("another process is evaluating"));
        };
        // A little under the interval: ticks of one process drift by milliseconds.
        let min_gap = self.channels.settings.interval.mul_f64(0.9);
        let due: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM scheduled_runs \
                                 WHERE task = $1 AND last_run_at > $2 - $3::interval)",
        )
        .bind(TASK)
        .bind(now)
        .bind(format!("{} milliseconds", min_gap.as_millis()))
        .fetch_one(&self.pool)
        .await?;
        if !due {
            lock.release().await;
            return Ok(Tick::Skipped("evaluated less than an interval ago"));
        }
        let evaluated = self.evaluate(now).await;
        if evaluated.is_ok() {
            sqlx::query(
                "INSERT INTO scheduled_runs (task, last_run_at) VALUES ($1, $2) \
                 ON CONFLICT (task) DO UPDATE SET last_run_at = excluded.last_run_at",
            )
            .bind(TASK)
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        lock.release().await;
        evaluated.map(Tick::Evaluated)
    }

    /// Evaluates every rule at `now` and moves each incident on, announcing transitions. The
    /// caller holds the task lock (or is a test that knows no one else evaluates).
    pub async fn evaluate(&self, now: DateTime<Utc>) -> anyhow::Result<Evaluation> {
        let findings = rules::evaluate(&self.pool, &self.channels.settings, now).await?;
        let mut evaluation = Evaluation::default();
        for rule in Rule::ALL {
            let finding = findings.iter().find(|f| f.rule == rule);
            let mut tx = self.pool.begin().await?;
            let transition =
                incident::advance(&mut tx, &self.channels.settings, rule, finding, now).await?;
            if let Some(transition) = &transition {
                self.channels
                    .announce(&mut tx, transition)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot write the alert's messages: {e}"))?;
            }
            tx.commit().await?;
            if let Some(transition) = transition {
                match transition.action {
                    incident::Action::Resolved => {
                        tracing::info!(rule = rule.name(), incident = %transition.incident_id, "alert resolved")
                    }
                    _ => {
                        tracing::warn!(rule = rule.name(), incident = %transition.incident_id,
                            action = transition.action.name(), "alert")
                    }
                }
                evaluation.transitions.push((rule, transition));
            }
        }
        evaluation.findings = findings;
        Ok(evaluation)
    }
}
