//! The command line: global settings, then one subcommand.

use billhook_core::config::{DatabaseSettings, TelemetrySettings};

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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create or upgrade the database schema: apalis's job tables, then Billhook's own.
    /// Safe to run again and from several processes at once.
    Migrate,
}

/// Runs the chosen subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            let pool = billhook_core::db::connect(&cli.database).await?;
            billhook_core::db::migrate(&pool).await?;
            tracing::info!("database migrated");
            println!("database migrated");
            Ok(())
        }
    }
}
