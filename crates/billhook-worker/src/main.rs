use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = billhook_worker::cli::Cli::parse();
    let _telemetry = billhook_core::telemetry::init("billhook-worker", &cli.telemetry)?;
    billhook_worker::cli::run(cli).await
}
