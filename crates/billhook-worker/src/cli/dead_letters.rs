//! `billhook-worker requeue …` and `billhook-worker dead-letters …`: reading the dead letters
//! and replaying them ([`crate::queue::dead_letter`] does the work).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::queue::dead_letter::{self, DeadLetter, Selection};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("selector").required(true).multiple(true)
    .args(["id", "event", "event_type", "since", "all"])))]
pub struct RequeueArgs {
    /// A dead-lettered job id (repeatable).
    #[arg(long = "id")]
    pub id: Vec<String>,
    /// Every dead letter of this Stripe event id (repeatable).
    #[arg(long = "event")]
    pub event: Vec<String>,
    /// Dead letters of this event type (or job kind, e.g. process_event).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Dead since this time: RFC 3339 (2026-11-22T10:00:00Z) or a duration ago (2h, 3d).
    #[arg(long = "since", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Every dead letter not yet requeued.
    #[arg(long = "all")]
    pub all: bool,
    /// Show what would be requeued; change nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Why, recorded on each dead letter.
    #[arg(long = "reason")]
    pub reason: String,
    /// Who, recorded on each dead letter (default: $USER).
    #[arg(long = "by", env = "USER")]
    pub by: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum DeadLettersCommand {
    /// One line per dead letter not yet requeued (--all: every one).
    List {
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter with its argument, error and history, as JSON.
    Show { job_id: String },
}

fn parse_since(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(value)
        .map_err(|_| format!("`{value}` is neither an RFC 3339 time nor a duration like 2h"))?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Ok(Utc::now() - ago)
}

/// Requeues the selected dead letters (or, with --dry-run, shows them).
pub async fn requeue(pool: &PgPool, args: RequeueArgs) -> anyhow::Result<()> {
    let selection = Selection {
        job_ids: args.id,
        event_ids: args.event,
        event_type: args.event_type,
        since: args.since,
        include_requeued: false,
    };
    let by = args.by.unwrap_or_else(|| "unknown".to_owned());
    let done = dead_letter::requeue(pool, &selection, &by, &args.reason, args.dry_run)
        .await
        .context("requeue failed; nothing was changed")?;
    let verb = if args.dry_run {
        "would requeue"
    } else {
        "requeued"
    };
    for d in &done {
        println!(
            "{verb} {} {} event={}",
            d.job_id,
            d.kind,
            d.event_id.as_deref().unwrap_or("-")
        );
    }
    println!("{verb} {} job(s)", done.len());
    Ok(())
}

/// `dead-letters list` and `dead-letters show`.
pub async fn run(pool: &PgPool, command: DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List { all, json } => {
            let selection = Selection {
                include_requeued: all,
                ..Selection::default()
            };
            let letters = dead_letter::list(pool, &selection).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else {
                print_table(&letters);
            }
            Ok(())
        }
        DeadLettersCommand::Show { job_id } => {
            let letter = dead_letter::show(pool, &job_id)
                .await?
                .with_context(|| format!("no dead letter for job {job_id}"))?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
            Ok(())
        }
    }
}

/// One line per dead letter; with requeued ones shown (`--all`), when and by whom the last
/// requeue was.
fn print_table(letters: &[DeadLetter]) {
    println!(
        "{:<28} {:<14} {:<32} {:>8}  {:<20} {:<36} error",
        "job", "kind", "event", "attempts", "dead at", "requeued"
    );
    for d in letters {
        let error: String = d.error.replace('\n', " ").chars().take(80).collect();
        println!(
            "{:<28} {:<14} {:<32} {:>8}  {:<20} {:<36} {}",
            d.job_id,
            d.kind,
            d.event_id.as_deref().unwrap_or("-"),
            d.attempts,
            d.dead_at.format("%Y-%m-%d %H:%M:%S"),
            requeued(d),
            error
        );
    }
    println!("{} dead letter(s)", letters.len());
}

/// `-`, or when the dead letter was last requeued and by whom.
fn requeued(d: &DeadLetter) -> String {
    let Some(at) = d.requeued_at else {
        return "-".to_owned();
    };
    let by = d
        .requeue_history
        .as_array()
        .and_then(|h| h.last())
        .and_then(|last| last.get("by"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown");
    format!("{} by {by}", at.format("%Y-%m-%d %H:%M:%S"))
}
