//! Settings of data retention. docs/configuration.md is the reference page.

use std::time::Duration;

use billhook_core::config::positive_duration;

/// Stripe's Events API keeps 30 days: a stored body younger than that may still be needed
/// (reconciliation compares ids over that horizon, and an operator replays failures from it).
pub const MINIMUM: Duration = Duration::from_secs(30 * 24 * 3600);

fn at_least_30_days(value: &str) -> Result<Duration, String> {
    let d = positive_duration(value)?;
    if d < MINIMUM {
        return Err(format!(
            "`{value}` is shorter than 30 days, Stripe's Events API horizon: bodies and ids \
             younger than that may still be needed"
        ));
    }
    Ok(d)
}

#[derive(clap::Args, Debug, Clone)]
pub struct RetentionSettings {
    /// Stored event bodies and headers, and the email, notice, failure and dead-letter rows of
    /// finished work, are removed after this long. At least 30 days. The mirror, orders,
    /// ledger and audit log are never removed.
    #[arg(id = "event_retention", long = "event-retention", env = "BILLHOOK_EVENT_RETENTION",
          default_value = "90d", value_parser = at_least_30_days)]
    pub events: Duration,

    /// An event's id (its row without the body) is kept this long, so that a late redelivery
    /// is still recognised as a duplicate; then the row goes. At least the event retention.
    #[arg(id = "event_id_retention", long = "event-id-retention", env = "BILLHOOK_EVENT_ID_RETENTION",
          default_value = "120d", value_parser = at_least_30_days)]
    pub ids: Duration,

    /// How often `run` removes what is past its time (one process at a time, in small
    /// batches).
    #[arg(id = "retention_interval", long = "retention-interval", env = "BILLHOOK_RETENTION_INTERVAL",
          default_value = "1h", value_parser = positive_duration)]
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(90 * 24 * 3600),
            ids: Duration::from_secs(120 * 24 * 3600),
            interval: Duration::from_secs(3600),
        }
    }
}

impl RetentionSettings {
    /// Refuses an id retention shorter than the event retention.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.ids >= self.events,
            "BILLHOOK_EVENT_ID_RETENTION ({}) is shorter than BILLHOOK_EVENT_RETENTION ({}): an \
             event's id must outlive its body",
            humantime::format_duration(self.ids),
            humantime::format_duration(self.events)
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_under_30_days_or_ids_shorter_than_bodies_are_refused() {
        assert!(at_least_30_days("29d").is_err());
        assert_eq!(at_least_30_days("30d"), Ok(MINIMUM));
        let settings = RetentionSettings {
            events: Duration::from_secs(100 * 86400),
            ids: Duration::from_secs(90 * 86400),
            ..RetentionSettings::default()
        };
        assert!(settings.check().is_err());
        assert!(RetentionSettings::default().check().is_ok());
    }
}
