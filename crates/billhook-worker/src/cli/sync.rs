//! `billhook-worker sync`: the first sync of an existing Stripe account into the mirror (see
//! [`crate::sync`]), with live progress on a terminal and a summary table at the end.

use anyhow::Context as _;
use sqlx::PgPool;

use crate::daemon::settings::RunSettings;
use crate::sync::{self, CreatedSince, ObjectType, Progress, Request};

/// What `sync` is asked to list: one type, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "snake_case")]
pub enum Target {
    All,
    Customers,
    PaymentMethods,
    Subscriptions,
    Invoices,
    PaymentIntents,
    Charges,
    CheckoutSessions,
}

impl Target {
    fn types(self) -> Vec<ObjectType> {
        match self {
            Self::All => ObjectType::ALL.to_vec(),
            Self::Customers => vec![ObjectType::Customers],
            Self::PaymentMethods => vec![ObjectType::PaymentMethods],
            Self::Subscriptions => vec![ObjectType::Subscriptions],
            Self::Invoices => vec![ObjectType::Invoices],
            Self::PaymentIntents => vec![ObjectType::PaymentIntents],
            Self::Charges => vec![ObjectType::Charges],
            Self::CheckoutSessions => vec![ObjectType::CheckoutSessions],
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// What to list (several may be given; `all` lists customers, then payment methods,
    /// subscriptions, invoices, payment intents, charges and checkout sessions).
    #[arg(value_enum, default_value = "all")]
    pub what: Vec<Target>,
    /// Only objects created since: a duration back from the run's start (30d) or an RFC 3339
    /// time (2025-01-01T00:00:00Z).
    #[arg(long, value_parser = created_since)]
    pub created_since: Option<CreatedSince>,
    /// Start a new run even when an unfinished one with the same types and --created-since
    /// could be resumed.
    #[arg(long)]
    pub fresh: bool,
}

impl SyncArgs {
    pub fn request(&self) -> Request {
        let types = self.what.iter().flat_map(|t| t.types()).collect();
        Request::new(types, self.created_since, self.fresh)
    }
}

pub async fn run(pool: &PgPool, settings: &RunSettings, args: SyncArgs) -> anyhow::Result<()> {
    let api = settings.billing.stripe_api()?.context(
        "sync reads Stripe's list endpoints: set BILLHOOK_STRIPE_API_KEY (a secret key, or a \
         restricted key with read access to customers, payment methods, subscriptions, \
         invoices, payment intents, charges and checkout sessions)",
    )?;
    let summary = sync::sync(pool, &api, &args.request(), &Progress::for_stderr()).await?;
    print!("{summary}");
    Ok(())
}

/// `--created-since`: an RFC 3339 time, else a duration (humantime: `30d`, `12h`).
fn created_since(value: &str) -> Result<CreatedSince, String> {
    Ok(match super::since::parse(value)? {
        super::since::Since::At(time) => CreatedSince::At(time),
        super::since::Since::Ago(back) => CreatedSince::Ago(back),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn created_since_is_a_time_or_a_duration_back() {
        assert_eq!(
            created_since("30d"),
            Ok(CreatedSince::Ago(Duration::from_secs(30 * 86_400)))
        );
        let at = created_since("2025-01-01T01:00:00+01:00").expect("a time");
        assert_eq!(
            at,
            CreatedSince::At("2025-01-01T00:00:00Z".parse().expect("time"))
        );
        assert!(created_since("last week").is_err());
    }

    #[test]
    fn all_and_single_types_become_the_listing_order() {
        let args = SyncArgs {
            what: vec![Target::Invoices, Target::Customers, Target::Invoices],
            created_since: None,
            fresh: false,
        };
        assert_eq!(
            args.request().types,
            [ObjectType::Customers, ObjectType::Invoices]
        );
        let all = SyncArgs {
            what: vec![Target::All],
            created_since: None,
            fresh: false,
        };
        assert_eq!(all.request().types, ObjectType::ALL);
    }
}
