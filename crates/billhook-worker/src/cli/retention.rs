//! `billhook-worker retention [--dry-run]`: one pass of data retention now, as `run` makes
//! every BILLHOOK_RETENTION_INTERVAL (under the same task lock, in the same small batches),
//! with its progress on stderr; or, with --dry-run, what such a pass would remove.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::retention::{self, Pruned, settings::RetentionSettings};
use crate::schedule::TaskLock;

#[derive(clap::Args, Debug)]
pub struct RetentionArgs {
    /// Count what a pass would remove now; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// How often progress is reported on a long pass.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub async fn run(
    pool: &PgPool,
    settings: &RetentionSettings,
    args: RetentionArgs,
) -> anyhow::Result<()> {
    settings.check()?;
    let now = chrono::Utc::now();
    println!(
        "retention: bodies and finished work older than {}, event ids older than {}",
        humantime::format_duration(settings.events),
        humantime::format_duration(settings.ids)
    );
    if args.dry_run {
        let pending = retention::pending(pool, settings, now).await?;
        print_counts("would remove", &pending);
        return Ok(());
    }
    let lock = match TaskLock::try_acquire(pool, retention::TASK).await? {
        Ok(lock) => lock,
        Err(_) => anyhow::bail!(
            "another process is applying retention now (it holds the `{}` task lock); nothing \
             was removed: run this again when it has finished",
            retention::TASK
        ),
    };
    let started = Instant::now();
    let mut last = Instant::now();
    let mut report = |so_far: &Pruned| {
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            eprintln!(
                "retention: {} rows so far in {:.0?} ({})",
                so_far.total(),
                started.elapsed(),
                summary(so_far)
            );
        }
    };
    let result =
        retention::prune_reporting(pool, settings, now, retention::PAUSE, &mut report).await;
    lock.release().await;
    let pruned = result?;
    print_counts("removed", &pruned);
    println!("done in {:.1?}", started.elapsed());
    Ok(())
}

fn summary(pruned: &Pruned) -> String {
    pruned
        .kinds()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_counts(verb: &str, counts: &Pruned) {
    println!("{verb} {} rows:", counts.total());
    for (what, n) in counts.kinds() {
        println!("  {what:<26} {n:>10}");
    }
}
