//! `billhook-worker reconcile`: one reconciliation run now (or a dry run), or the recorded
//! runs and the watermark (`--status`).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::daemon::settings::RunSettings;
use crate::reconcile::metrics::ReconcileMetrics;
use crate::reconcile::record::{self, RunRow};
use crate::reconcile::{Options, Outcome, Reconciler, Trigger};

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// List from here instead of from the watermark: a duration back (3d) or an RFC 3339
    /// time. Stripe's Events API goes back 30 days.
    #[arg(long, value_parser = super::since::past_time)]
    pub since: Option<DateTime<Utc>>,
    /// Report the events missing from the inbox; store nothing and leave the watermark.
    #[arg(long)]
    pub dry_run: bool,
    /// Show the watermark and the latest runs instead of running.
    #[arg(long, conflicts_with_all = ["since", "dry_run"])]
    pub status: bool,
    /// Runs shown by --status.
    #[arg(long, default_value_t = 10, requires = "status")]
    pub limit: i64,
}

pub async fn run(pool: &PgPool, settings: &RunSettings, args: ReconcileArgs) -> anyhow::Result<()> {
    if args.status {
        return status(pool, args.limit).await;
    }
    let api = settings.billing.stripe_api()?.context(
        "reconciliation reads Stripe's Events API: set BILLHOOK_STRIPE_API_KEY (a secret key, or \
         a restricted key with read access to events and webhook endpoints)",
    )?;
    let reconciler = Reconciler {
        pool: pool.clone(),
        api,
        settings: settings.reconcile.clone(),
        metrics: ReconcileMetrics::new(),
    };
    let options = Options {
        since: args.since,
        dry_run: args.dry_run,
    };
    let summary = match reconciler.run(Trigger::Command, &options).await? {
        Outcome::Ran(summary) => summary,
        Outcome::Skipped(why) => {
            println!("nothing done: {why}");
            return Ok(());
        }
    };
    let verb = if summary.dry_run {
        "missing (dry run: nothing stored)"
    } else {
        "recovered"
    };
    println!(
        "run {}: {} → {}: {} page(s), {} event(s) listed, {} {verb}",
        summary.run,
        summary.since.to_rfc3339(),
        summary.until.to_rfc3339(),
        summary.pages,
        summary.seen,
        summary.recovered,
    );
    for id in &summary.sample {
        println!("  {id}");
    }
    if summary.recovered > summary.sample.len() {
        println!("  … and {} more", summary.recovered - summary.sample.len());
    }
    for problem in &summary.problems {
        println!("problem: {problem}");
    }
    Ok(())
}

async fn status(pool: &PgPool, limit: i64) -> anyhow::Result<()> {
    let watermark = record::watermark(pool).await?;
    let running = crate::schedule::TaskLock::is_held(pool, crate::reconcile::TASK).await?;
    match watermark {
        Some(w) => println!(
            "watermark: {} ({} ago){}",
            w.to_rfc3339(),
            age(Utc::now() - w),
            if running {
                "; a run is in progress"
            } else {
                ""
            }
        ),
        None => println!("watermark: none yet (no run has finished a window)"),
    }
    let runs = record::recent(pool, limit).await?;
    if runs.is_empty() {
        println!("no runs recorded");
    }
    for run in runs {
        print_run(&run, running);
    }
    Ok(())
}

fn print_run(run: &RunRow, lock_held: bool) {
    // A run still marked running while nobody holds the lock died with its process.
    let outcome = if run.outcome == "running" && !lock_held {
        "interrupted"
    } else {
        run.outcome.as_str()
    };
    println!(
        "run {} [{}{}] {} started {}, {}: {} → {}, {} page(s), {} listed, {} recovered",
        run.id,
        run.trigger,
        if run.dry_run { ", dry run" } else { "" },
        outcome,
        run.started_at.to_rfc3339(),
        run.finished_at.map_or_else(
            || "not finished".to_owned(),
            |f| format!("took {}", age(f - run.started_at))
        ),
        run.since.to_rfc3339(),
        run.until.to_rfc3339(),
        run.pages,
        run.events_seen,
        run.events_recovered,
    );
    if !run.recovered_sample.is_empty() {
        println!("    recovered: {}", run.recovered_sample.join(", "));
    }
    if let Some(endpoint) = &run.endpoint {
        println!("    endpoint: {endpoint}");
    }
    for problem in &run.problems {
        println!("    problem: {problem}");
    }
    if let Some(error) = &run.error {
        println!("    error: {error}");
    }
}

fn age(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    humantime::format_duration(std::time::Duration::from_secs(secs as u64)).to_string()
}
