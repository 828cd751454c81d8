//! The command line: global settings, then one subcommand (`run` when none is given).

use anyhow::Context as _;
use billhook_core::config::{DatabaseSettings, TelemetrySettings};
use chrono::{DateTime, Utc};

use crate::billing_cli::{DunningCommand, LedgerCommand, OrdersCommand};
use crate::dead_letter::{self, DeadLetter, Selection};
use crate::settings::RunSettings;

#[derive(clap::Parser, Debug)]
#[command(
    name = "billhook-worker",
    version,
    about = "Applies stored Stripe events; operator commands."
)]
pub struct Cli {
    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub telemetry: TelemetrySettings,

    #[command(flatten)]
    pub run: RunSettings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (the default): apply events, run follow-up jobs, retry, dead-letter.
    Run,
    /// Create or upgrade the database schema: apalis's job tables, then Billhook's own.
    /// Safe to run again and from several processes at once.
    Migrate,
    /// Replay dead-lettered jobs: reset them in place, due now, and record who and why.
    Requeue(RequeueArgs),
    /// Read the dead letters.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// The ledger: manual entries and balances.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Orders: create one before its payment, show one.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Dunning runs: list, show.
    #[command(subcommand)]
    Dunning(DunningCommand),
}

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

/// Runs the chosen subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let pool = billhook_core::db::connect(&cli.database).await?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let daemon = crate::daemon::Daemon::build(pool, cli.run).await?;
            daemon.run(billhook_core::shutdown::signal()).await
        }
        Command::Migrate => {
            billhook_core::db::migrate(&pool).await?;
            tracing::info!("database migrated");
            println!("database migrated");
            Ok(())
        }
        Command::Requeue(args) => {
            billhook_core::db::check_migrated(&pool).await?;
            let selection = Selection {
                job_ids: args.id,
                event_ids: args.event,
                event_type: args.event_type,
                since: args.since,
                include_requeued: false,
            };
            let by = args.by.unwrap_or_else(|| "unknown".to_owned());
            let done = dead_letter::requeue(&pool, &selection, &by, &args.reason, args.dry_run)
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
        Command::DeadLetters(DeadLettersCommand::List { all, json }) => {
            billhook_core::db::check_migrated(&pool).await?;
            let selection = Selection {
                include_requeued: all,
                ..Selection::default()
            };
            let letters = dead_letter::list(&pool, &selection).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else {
                print_table(&letters);
            }
            Ok(())
        }
        Command::Ledger(command) => {
            billhook_core::db::check_migrated(&pool).await?;
            crate::billing_cli::ledger(&pool, command).await
        }
        Command::Orders(command) => {
            billhook_core::db::check_migrated(&pool).await?;
            crate::billing_cli::orders(&pool, command).await
        }
        Command::Dunning(command) => {
            billhook_core::db::check_migrated(&pool).await?;
            crate::billing_cli::dunning(&pool, command).await
        }
        Command::DeadLetters(DeadLettersCommand::Show { job_id }) => {
            billhook_core::db::check_migrated(&pool).await?;
            let letter = dead_letter::show(&pool, &job_id)
                .await?
                .with_context(|| format!("no dead letter for job {job_id}"))?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
            Ok(())
        }
    }
}

fn print_table(letters: &[DeadLetter]) {
    println!(
        "{:<28} {:<14} {:<32} {:>8}  {:<20} error",
        "job", "kind", "event", "attempts", "dead at"
    );
    for d in letters {
        let mut error = d.error.replace('\n', " ");
        error.truncate(80);
        println!(
            "{:<28} {:<14} {:<32} {:>8}  {:<20} {}",
            d.job_id,
            d.kind,
            d.event_id.as_deref().unwrap_or("-"),
            d.attempts,
            d.dead_at.format("%Y-%m-%d %H:%M:%S"),
            error
        );
    }
    println!("{} dead letter(s)", letters.len());
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap checks its definition (unique ids, flags, defaults) only when a command line is
    /// parsed: a clash would otherwise surface as a panic at the worker's start.
    #[test]
    fn the_worker_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
