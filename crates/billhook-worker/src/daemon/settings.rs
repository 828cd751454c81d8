//! Settings of the `run` daemon. Declared here with their defaults; docs/configuration.md is
//! the reference page.

use crate::alerts::settings::AlertSettings;
use crate::billing::settings::BillingSettings;
use crate::dunning::DunningSettings;
use crate::email::settings::EmailSettings;
use crate::notify::settings::NotifySettings;
use crate::queue::QueueSettings;
use crate::reconcile::settings::ReconcileSettings;

#[derive(clap::Args, Debug, Clone)]
pub struct RunSettings {
    /// Address of the internal listener: /healthz, /readyz, /metrics. Keep it private.
    #[arg(
        long = "admin-listen",
        env = "BILLHOOK_WORKER_ADMIN_LISTEN",
        default_value = "127.0.0.1:9081"
    )]
    pub admin_listen: String,

    // How jobs are fetched, retried and kept (crate::queue).
    #[command(flatten)]
    pub queue: QueueSettings,

    #[command(flatten)]
    pub notify: NotifySettings,

    #[command(flatten)]
    pub billing: BillingSettings,

    #[command(flatten)]
    pub email: EmailSettings,

    #[command(flatten)]
    pub dunning: DunningSettings,

    #[command(flatten)]
    pub reconcile: ReconcileSettings,

    #[command(flatten)]
    pub alerts: AlertSettings,

    #[command(flatten)]
    pub summary: crate::summary::settings::SummarySettings,

    #[command(flatten)]
    pub retention: crate::retention::settings::RetentionSettings,

    // The operator console (`billhook-worker console`).
    #[command(flatten)]
    pub console: billhook_console::ConsoleSettings,
}
