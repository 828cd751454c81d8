#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: billhook_worker::cli::Cli = billhook_core::config::parse_or_exit();
    let _telemetry = billhook_core::telemetry::init("billhook-worker", &cli.telemetry)?;
    billhook_worker::cli::run(cli).await
}
