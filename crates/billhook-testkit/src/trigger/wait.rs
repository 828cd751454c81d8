//! Waiting for the worker, by reading its database every 200 ms for at most a limit: until a
//! chapter's events are applied, until a dunning run has taken its first step or has ended,
//! until the emails and notices a story set off have left `pending`. A wait that runs out says
//! what is missing and the likely cause rather than hanging.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use billhook_worker::dunning::STEPS;
use sqlx::PgPool;

use super::Sent;
use crate::objects::Cast;

const POLL: Duration = Duration::from_millis(200);

/// A dunning step due further ahead than this is not waited for: the worker's schedule is not
/// a development one.
const LONGEST_STEP_WAIT: Duration = Duration::from_secs(90);

/// Statuses of a stored event that the worker is done with. `received` and `processing` are
/// not yet; `failed` is retried.
const DONE: [&str; 4] = ["applied", "ignored", "stale", "dead"];

/// Waits until every event in `ids` is done with (see `DONE`); returns how long that took.
pub async fn until_applied(
    pool: &PgPool,
    ids: &[String],
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let rows: Vec<(String, String, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT id, type, status, attempts, last_error FROM webhook_events WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(pool)
        .await
        .context("cannot read webhook_events (is DATABASE_URL the receiver's database?)")?;
        if rows.len() == ids.len() && rows.iter().all(|r| DONE.contains(&r.2.as_str())) {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= limit {
            let mut why = vec![format!(
                "the worker did not apply the story's events within {} s:",
                limit.as_secs()
            )];
            if rows.len() < ids.len() {
                why.push(format!(
                    "  {} of them are not in webhook_events: does the receiver write to the database of DATABASE_URL?",
                    ids.len() - rows.len()
                ));
            }
            let untouched = rows
                .iter()
                .filter(|r| r.2 == "received" && r.3 == 0)
                .count();
            if untouched > 0 {
                why.push(format!(
                    "  {untouched} still `received`, never tried: is `billhook-worker run` running on this database? \
                     scripts/dev.sh starts it (a worker started later applies them)"
                ));
            }
            for (id, event_type, status, attempts, error) in &rows {
                if status == "failed" || (status == "processing" && *attempts > 0) {
                    why.push(format!(
                        "  {event_type} {id}: {status} after {attempts} attempt(s): {} (the worker retries it)",
                        error.as_deref().unwrap_or("no error recorded")
                    ));
                }
            }
            bail!(why.join("\n"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The subscription's latest dunning run.
#[derive(sqlx::FromRow)]
struct Run {
    id: String,
    state: String,
    steps_done: i32,
    /// Seconds until its next step is due (negative: overdue).
    due_in: Option<f64>,
    next_step_at: Option<String>,
    stop_reason: Option<String>,
}

async fn run_of(pool: &PgPool, subscription: &str) -> anyhow::Result<Option<Run>> {
    sqlx::query_as(
        "SELECT id, state, steps_done, extract(epoch FROM next_step_at - now())::float8 AS due_in,
                to_char(next_step_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' AS next_step_at,
                stop_reason
           FROM dunning_runs WHERE subscription_id = $1 ORDER BY started_at DESC LIMIT 1",
    )
    .bind(subscription)
    .fetch_optional(pool)
    .await
    .context("cannot read dunning_runs")
}

fn step_name(step: i32) -> &'static str {
    usize::try_from(step)
        .ok()
        .and_then(|s| STEPS.get(s))
        .copied()
        .unwrap_or("none")
}

/// Waits until the subscription's dunning run has taken its first step (the payment-failed
/// email), unless that step is due later than a development schedule would have it.
pub async fn first_dunning_step(
    pool: &PgPool,
    subscription: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let Some(run) = run_of(pool, subscription).await? else {
            println!("  no dunning run was opened for {subscription}");
            return Ok(());
        };
        if run.state != "active" || run.steps_done >= 1 {
            println!(
                "  dunning run {}: step 1 of {} ({}) done",
                run.id,
                STEPS.len(),
                step_name(0)
            );
            return Ok(());
        }
        if run
            .due_in
            .is_some_and(|d| d > LONGEST_STEP_WAIT.as_secs_f64())
        {
            println!(
                "  dunning run {}: its first step is due {}; the story goes on without it",
                run.id,
                run.next_step_at.as_deref().unwrap_or("later")
            );
            return Ok(());
        }
        if started.elapsed() >= limit + LONGEST_STEP_WAIT {
            bail!(
                "dunning run {} has not taken its first step: is `billhook-worker run` running?",
                run.id
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How a followed dunning run ended.
pub enum RunEnd {
    /// Over: canceled, recovered or stopped.
    Over,
    /// Its cancellation step failed for good (without a Stripe API key, for one).
    CancelDeadLettered,
    /// Its next step is further ahead than a development schedule would put it, or it failed.
    NotFollowed,
}

impl RunEnd {
    /// Whether the story's next chapter, Stripe's `customer.subscription.deleted`, follows.
    pub fn story_goes_on(&self) -> bool {
        !matches!(self, Self::NotFollowed)
    }
}

/// Follows the subscription's dunning run step by step, printing each, until it is over, its
/// cancellation step is dead-lettered, or its next step is too far ahead to wait for.
pub async fn dunning_run_ends(
    pool: &PgPool,
    subscription: &str,
    limit: Duration,
) -> anyhow::Result<RunEnd> {
    let mut shown = 0;
    let mut overdue_since: Option<Instant> = None;
    loop {
        let Some(run) = run_of(pool, subscription).await? else {
            println!("  no dunning run was opened for {subscription}");
            return Ok(RunEnd::NotFollowed);
        };
        while shown < run.steps_done {
            println!(
                "  dunning run {}: step {} of {} ({}) done",
                run.id,
                shown + 1,
                STEPS.len(),
                step_name(shown)
            );
            shown += 1;
        }
        if run.state != "active" {
            let reason = run
                .stop_reason
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            println!("  dunning run {}: {}{reason}", run.id, run.state);
            return Ok(RunEnd::Over);
        }
        let dead: Option<String> = sqlx::query_scalar(
            "SELECT error FROM dead_letters
              WHERE kind = 'dunning_step' AND requeued_at IS NULL
                AND argument->>'run_id' = $1 AND (argument->>'step')::int = $2",
        )
        .bind(&run.id)
        .bind(run.steps_done)
        .fetch_optional(pool)
        .await
        .context("cannot read dead_letters")?;
        if let Some(error) = dead {
            let step = step_name(run.steps_done);
            println!(
                "  dunning run {}: step {} of {} ({step}) is dead-lettered: {error}",
                run.id,
                run.steps_done + 1,
                STEPS.len()
            );
            if step != "cancel" {
                return Ok(RunEnd::NotFollowed);
            }
            println!(
                "    Billhook cancels through Stripe's API, which needs BILLHOOK_STRIPE_API_KEY (dev runs have none, and the\n    \
                 story's subscription exists only in this database). Stripe plays its part instead: its own retry\n    \
                 rules cancel the subscription and it sends customer.subscription.deleted."
            );
            return Ok(RunEnd::CancelDeadLettered);
        }
        match run.due_in {
            Some(due) if due > LONGEST_STEP_WAIT.as_secs_f64() => {
                println!(
                    "  dunning run {}: its next step ({}) is due {}. The worker's BILLHOOK_DUNNING_SCHEDULE \
                     is longer than this tool waits (dev runs use e.g. 0s,10s,20s,30s): the story ends here, \
                     the subscription past_due",
                    run.id,
                    step_name(run.steps_done),
                    run.next_step_at.as_deref().unwrap_or("later")
                );
                return Ok(RunEnd::NotFollowed);
            }
            Some(due) if due < 0.0 => {
                let since = *overdue_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= limit {
                    println!(
                        "  dunning run {}: its step {} ({}) has been due for {} s and has not run: is `billhook-worker run` running?",
                        run.id,
                        run.steps_done + 1,
                        step_name(run.steps_done),
                        limit.as_secs()
                    );
                    return Ok(RunEnd::NotFollowed);
                }
            }
            _ => overdue_since = None,
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (for at most ten seconds) until the emails and notices the story set off are no
/// longer pending, so the account shows them sent. An email held until later stays pending.
pub async fn follow_ups_settle(
    pool: &PgPool,
    cast: &Cast,
    sent: &[Sent],
    limit: Duration,
) -> anyhow::Result<()> {
    let limit = limit.min(Duration::from_secs(10));
    let events: Vec<&str> = sent.iter().map(|s| s.id.as_str()).collect();
    let started = Instant::now();
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM emails e
                      WHERE (e.recipient = $1 OR e.event_id = ANY($2)) AND e.status = 'pending'
                        AND NOT EXISTS (SELECT 1 FROM apalis.jobs j
                                         WHERE j.idempotency_key = e.id AND j.run_at > now()))
                  + (SELECT count(*) FROM app_notifications WHERE event_id = ANY($2) AND status = 'pending')",
        )
        .bind(&cast.email)
        .bind(&events)
        .fetch_one(pool)
        .await
        .context("cannot read emails and app_notifications")?;
        if pending == 0 || started.elapsed() >= limit {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}
