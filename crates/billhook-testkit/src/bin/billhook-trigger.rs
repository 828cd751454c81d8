//! billhook-trigger: signs a realistic built-in event and posts it to a receiver, as
//! `stripe trigger` would. For local development (scripts/trigger.sh) and demos.

use anyhow::{Context as _, bail};
use billhook_core::stripe::WebhookSecrets;
use billhook_testkit::fixtures::{self, ApiShape, EVENT_TYPES};
use clap::Parser as _;

#[derive(clap::Parser)]
#[command(
    name = "billhook-trigger",
    about = "Sign a built-in Stripe event and POST it to a receiver."
)]
struct Args {
    /// Event type, e.g. payment_intent.succeeded (see --list).
    #[arg(required_unless_present = "list")]
    event_type: Option<String>,

    /// Where to post it.
    #[arg(
        long,
        env = "BILLHOOK_TRIGGER_URL",
        default_value = "http://127.0.0.1:8080/api/webhooks/stripe"
    )]
    url: String,

    /// The receiver's secrets; the first one signs.
    #[arg(
        long = "webhook-secrets",
        env = "BILLHOOK_WEBHOOK_SECRETS",
        hide_env_values = true
    )]
    secrets: Option<String>,

    /// Payload shape: acacia (API 2025-02-24) or dahlia (2026-07-29, after 2025-03-31).
    #[arg(long = "api-version", default_value = "dahlia")]
    api_version: Shape,

    /// List the event types with a built-in example and exit.
    #[arg(long)]
    list: bool,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Shape {
    Acacia,
    Dahlia,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        EVENT_TYPES.iter().for_each(|t| println!("{t}"));
        return Ok(());
    }
    let event_type = args.event_type.context("an event type is required")?;
    let shape = match args.api_version {
        Shape::Acacia => ApiShape::Acacia,
        Shape::Dahlia => ApiShape::Dahlia,
    };
    let Some(event) = fixtures::event(&event_type, shape) else {
        bail!("no built-in example for `{event_type}`; --list shows the types there are");
    };
    let secrets = args
        .secrets
        .context("set BILLHOOK_WEBHOOK_SECRETS (or --webhook-secrets) to the receiver's secret")?;
    let secrets = WebhookSecrets::parse(&secrets).context("BILLHOOK_WEBHOOK_SECRETS")?;
    let body = fixtures::to_body(&event);
    let signature = secrets.first().sign(fixtures::unix_now(), &body);
    let response = reqwest::Client::new()
        .post(&args.url)
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", signature)
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.url))?;
    let status = response.status();
    let answer = response.text().await.unwrap_or_default();
    println!(
        "{event_type} {} -> {status} {answer}",
        event["id"].as_str().unwrap_or("?")
    );
    if !status.is_success() {
        bail!("the receiver answered {status}");
    }
    Ok(())
}
