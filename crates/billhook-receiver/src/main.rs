#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: billhook_core::config::ReceiverSettings = billhook_core::config::parse_or_exit();
    let _telemetry = billhook_core::telemetry::init("billhook-receiver", &settings.telemetry)?;
    let app = billhook_receiver::Application::build(settings).await?;
    app.run_until_stopped(billhook_core::shutdown::signal())
        .await
}
