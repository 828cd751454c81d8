//! Settings of reconciliation. docs/configuration.md is the reference page.

use std::time::Duration;

use billhook_core::config::positive_duration;

#[derive(clap::Args, Debug, Clone)]
pub struct ReconcileSettings {
    /// How often `run` reconciles the inbox with Stripe's Events API (one run at a time across
    /// every worker process). Needs BILLHOOK_STRIPE_API_KEY; without it nothing is scheduled.
    #[arg(long = "reconcile-interval", env = "BILLHOOK_RECONCILE_INTERVAL", default_value = "15m",
          value_parser = positive_duration)]
    pub interval: Duration,

    /// How far before the stored watermark each run starts listing again, for events Stripe
    /// lists a little after their creation time.
    #[arg(long = "reconcile-overlap", env = "BILLHOOK_RECONCILE_OVERLAP", default_value = "5m",
          value_parser = humantime::parse_duration)]
    pub overlap: Duration,

    /// Events younger than this are left to their webhook delivery, which is normally on its
    /// way: a run lists only events created at least this long ago, so an event still being
    /// delivered is not counted as missed.
    #[arg(long = "reconcile-grace", env = "BILLHOOK_RECONCILE_GRACE", default_value = "2m",
          value_parser = humantime::parse_duration)]
    pub grace: Duration,

    /// This deployment's webhook endpoint in Stripe: its `we_…` id or its URL. When set, each
    /// run reads it and reports a disabled endpoint or handled event types it does not send.
    #[arg(
        long = "stripe-webhook-endpoint",
        env = "BILLHOOK_STRIPE_WEBHOOK_ENDPOINT"
    )]
    pub webhook_endpoint: Option<String>,

    /// Attempts the worker makes at each ProcessEvent job before it is dead-lettered, for the
    /// jobs of recovered events (the receiver reads the same setting for delivered ones).
    #[arg(long = "process-event-max-attempts", env = "BILLHOOK_PROCESS_EVENT_MAX_ATTEMPTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub process_event_max_attempts: u32,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15 * 60),
            overlap: Duration::from_secs(5 * 60),
            grace: Duration::from_secs(2 * 60),
            webhook_endpoint: None,
            process_event_max_attempts: 10,
        }
    }
}
