//! Settings of the billing handlers: the ledger rule, the entitlement grace period and Stripe's
//! API. docs/configuration.md is the reference page.

use std::time::Duration;

use billhook_core::config::positive_duration;
use secrecy::SecretString;

use super::ledger::LedgerRule;
use crate::stripe::StripeApi;

#[derive(clap::Args, Clone)]
pub struct BillingSettings {
    /// How paid amounts become ledger credits (and refunds debits): `minor-units` (the amount
    /// in the currency's smallest unit, as a prepaid balance would), `points:N` (N whole points
    /// per whole currency unit, rounded down, as a loyalty scheme would) or `off`.
    #[arg(
        long = "ledger-rule",
        env = "BILLHOOK_LEDGER_RULE",
        default_value = "minor-units"
    )]
    pub ledger_rule: LedgerRule,

    /// How long a `past_due` subscription still counts in the entitlements view.
    #[arg(long = "past-due-grace", env = "BILLHOOK_PAST_DUE_GRACE", default_value = "3d",
          value_parser = humantime::parse_duration)]
    pub past_due_grace: Duration,

    /// Stripe secret or restricted key (read access to the mirrored objects; write access to
    /// subscriptions for dunning). Unset: Billhook never calls Stripe's API.
    #[arg(
        long = "stripe-api-key",
        env = "BILLHOOK_STRIPE_API_KEY",
        hide_env_values = true
    )]
    pub stripe_api_key: Option<SecretString>,

    /// Base URL of Stripe's API.
    #[arg(
        long = "stripe-api-base",
        env = "BILLHOOK_STRIPE_API_BASE",
        default_value = "https://api.stripe.com/"
    )]
    pub stripe_api_base: reqwest::Url,

    /// Timeout of one call to Stripe's API.
    #[arg(long = "stripe-api-timeout", env = "BILLHOOK_STRIPE_API_TIMEOUT", default_value = "10s",
          value_parser = positive_duration)]
    pub stripe_api_timeout: Duration,

    /// Requests per second Billhook sends to Stripe's API at most, per process (Stripe allows
    /// 25 in test mode, 100 in live mode, per account). Reconciliation and sync wait for it;
    /// a 429 is retried after Stripe's `Retry-After`.
    #[arg(long = "stripe-api-rate", env = "BILLHOOK_STRIPE_API_RATE", default_value = "20",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub stripe_api_rate: u32,
}

impl std::fmt::Debug for BillingSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingSettings")
            .field("ledger_rule", &self.ledger_rule)
            .field("past_due_grace", &self.past_due_grace)
            .field(
                "stripe_api_key",
                &self.stripe_api_key.as_ref().map(|_| "[redacted]"),
            )
            .field("stripe_api_base", &self.stripe_api_base.as_str())
            .field("stripe_api_timeout", &self.stripe_api_timeout)
            .field("stripe_api_rate", &self.stripe_api_rate)
            .finish()
    }
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            ledger_rule: LedgerRule::MinorUnits,
            past_due_grace: Duration::from_secs(3 * 24 * 3600),
            stripe_api_key: None,
            stripe_api_base: reqwest::Url::parse("https://api.stripe.com/").expect("a valid URL"),
            stripe_api_timeout: Duration::from_secs(10),
            stripe_api_rate: crate::stripe::api::DEFAULT_RATE,
        }
    }
}

impl BillingSettings {
    /// The Stripe API client, when a key is configured.
    pub fn stripe_api(&self) -> anyhow::Result<Option<StripeApi>> {
        self.stripe_api_key
            .clone()
            .map(|key| {
                StripeApi::new(self.stripe_api_base.clone(), key, self.stripe_api_timeout)
                    .map(|api| api.with_rate(self.stripe_api_rate))
            })
            .transpose()
    }
}

/// Writes the settings the database's views read (the `entitlements` grace period).
pub async fn store(pool: &sqlx::PgPool, settings: &BillingSettings) -> anyhow::Result<()> {
    sqlx::query("UPDATE billing_settings SET past_due_grace = make_interval(secs => $1)")
        .bind(settings.past_due_grace.as_secs_f64())
        .execute(pool)
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot store the billing settings"))?;
    Ok(())
}
