//! The command line: global settings, then one subcommand (`run` when none is given).

pub mod alerts;
pub mod billing;
pub mod dead_letters;
#[cfg(test)]
mod documented_settings;
pub mod reconcile;
pub mod retention;
pub mod since;
pub mod summary;
pub mod sync;

use billhook_core::config::{DatabaseSettings, TelemetrySettings};

use crate::daemon::settings::RunSettings;
use billing::{DunningCommand, LedgerCommand, OrdersCommand};
use dead_letters::{DeadLettersCommand, RequeueArgs};

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
    /// Create or upgrade the database schema: the job queue's tables, then Billhook's own.
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
    /// Orders: create one before its payment, show one, mark one fulfilled.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Dunning runs: list, show.
    #[command(subcommand)]
    Dunning(DunningCommand),
    /// Recover events webhooks did not deliver, from Stripe's Events API (the daemon does it
    /// every BILLHOOK_RECONCILE_INTERVAL); --status shows the runs.
    Reconcile(reconcile::ReconcileArgs),
    /// Serve the operator console alone (its JSON API under /api/v1) on
    /// BILLHOOK_CONSOLE_LISTEN, without processing jobs.
    Console,
    /// Alerts: the incidents, acknowledging one, evaluating the rules now.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Apply data retention now (the daemon does it every BILLHOOK_RETENTION_INTERVAL);
    /// --dry-run counts what would go.
    Retention(retention::RetentionArgs),
    /// The daily summary of one day: print it, or send it again.
    Summary(summary::SummaryArgs),
    /// Fill the mirror from an existing Stripe account's lists (no emails, notices or ledger
    /// entries for the past); resumes an interrupted run.
    Sync(sync::SyncArgs),
}

/// Builds the daemon, again while PostgreSQL is unavailable (restarting, failing over,
/// terminating connections) for up to BILLHOOK_WORKER_GIVE_UP_AFTER, as the running daemon rides
/// such an outage out: a restart that lands in the middle of start-up is no reason to exit.
async fn build_waiting(
    pool: sqlx::PgPool,
    settings: crate::daemon::settings::RunSettings,
) -> anyhow::Result<crate::daemon::Daemon> {
    billhook_core::db::retry_while_unavailable(
        settings.queue.give_up_after,
        "PostgreSQL went away during start-up; starting again",
        || crate::daemon::Daemon::build(pool.clone(), settings.clone()),
    )
    .await
}

/// Runs the chosen subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Run);
    // The daemon waits for a database that is down as long as it would keep running without
    // one (BILLHOOK_WORKER_GIVE_UP_AFTER); a one-off command fails at once.
    let pool = if matches!(command, Command::Run) {
        billhook_core::db::connect_waiting(&cli.database, cli.run.queue.give_up_after).await?
    } else {
        billhook_core::db::connect(&cli.database).await?
    };
    match command {
        Command::Run => {
            let daemon = build_waiting(pool, cli.run).await?;
            daemon.run(billhook_core::shutdown::signal()).await
        }
        Command::Migrate => {
            let done = billhook_core::db::migrate(&pool).await?;
            for (what, step) in [("job queue", done.queue), ("billhook", done.billhook)] {
                println!(
                    "{what} tables: {} migration(s) applied, {} already there",
                    step.applied,
                    step.total - step.applied
                );
            }
            println!("database migrated");
            Ok(())
        }
        Command::Requeue(args) => {
            billhook_core::db::check_migrated(&pool).await?;
            dead_letters::requeue(&pool, args).await
        }
        Command::DeadLetters(command) => {
            billhook_core::db::check_migrated(&pool).await?;
            dead_letters::run(&pool, command).await
        }
        Command::Ledger(command) => {
            billhook_core::db::check_migrated(&pool).await?;
            billing::ledger(&pool, command).await
        }
        Command::Orders(command) => {
            billhook_core::db::check_migrated(&pool).await?;
            billing::orders(&pool, command).await
        }
        Command::Dunning(command) => {
            billhook_core::db::check_migrated(&pool).await?;
            billing::dunning(&pool, command).await
        }
        Command::Console => {
            crate::console::serve(pool, &cli.run.console, billhook_core::shutdown::signal()).await
        }
        Command::Reconcile(args) => {
            billhook_core::db::check_migrated(&pool).await?;
            reconcile::run(&pool, &cli.run, args).await
        }
        Command::Alerts(command) => {
            billhook_core::db::check_migrated(&pool).await?;
            alerts::run(&pool, &cli.run, command).await
        }
        Command::Retention(args) => {
            billhook_core::db::check_migrated(&pool).await?;
            retention::run(&pool, &cli.run.retention, args).await
        }
        Command::Summary(args) => {
            billhook_core::db::check_migrated(&pool).await?;
            summary::run(&pool, &cli.run, args).await
        }
        Command::Sync(args) => {
            billhook_core::db::check_migrated(&pool).await?;
            sync::run(&pool, &cli.run, args).await
        }
    }
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

    /// clap quotes a refused value in its error; a secret setting's error must not.
    #[test]
    fn a_refused_secret_setting_is_not_shown() {
        use clap::Parser as _;
        let good = "ops=operate:GoodToken0123456789abcdefghij";
        for (flag, value, secret) in [
            (
                "--console-tokens",
                format!("{good},x=read:short"),
                "GoodToken0123",
            ),
            (
                "--alert-slack-url",
                "hooks.example/services/T0/B0/SlackSecretPath".to_owned(),
                "SlackSecretPath",
            ),
            ("--database-url", " ".to_owned(), " "),
        ] {
            let error = super::Cli::try_parse_from(["billhook-worker", flag, &value, "console"])
                .expect_err("refused")
                .to_string();
            assert!(error.contains("(not shown)"), "{flag}: {error}");
            if secret.trim().is_empty() {
                continue;
            }
            assert!(!error.contains(secret), "{flag}: {error}");
        }
    }
}
