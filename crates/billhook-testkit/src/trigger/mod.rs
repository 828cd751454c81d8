//! What `billhook-trigger` does against a running Billhook (scripts/dev.sh): signs events and
//! posts them to the receiver, as Stripe would, one at a time; for a story, waits for the worker
//! after each chapter ([`wait`]) and then tells what Billhook did ([`account`]). It reads the
//! worker's database and writes to it only what the host application would: a story's pending
//! order.

pub mod account;
mod follow_ups;
pub mod wait;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use billhook_core::stripe::WebhookSecrets;
use serde_json::Value;
use sqlx::PgPool;

use crate::fixtures::{self, ApiShape};
use crate::objects::Cast;
use crate::stories::{CURRENCY, PURCHASE_AMOUNT, Story, Then};

/// The receiver's webhook endpoint, and the secret that signs for it.
pub struct Receiver {
    url: String,
    secrets: WebhookSecrets,
    client: reqwest::Client,
}

/// An event the receiver accepted.
pub struct Sent {
    pub id: String,
    pub event_type: String,
    /// The receiver's answer: its status and body.
    pub answer: String,
}

/// Deadline of one post to the receiver, connecting included.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Receiver {
    /// Each post has `timeout` ([`SEND_TIMEOUT`] in the tool) for its whole exchange: a
    /// receiver that hangs is an error, not a tool that hangs with it.
    pub fn new(
        url: String,
        secrets: WebhookSecrets,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            url,
            secrets,
            client,
        })
    }

    /// Signs `event` now with the first secret and posts it; an answer other than 2xx is an
    /// error.
    pub async fn send(&self, event: &Value) -> anyhow::Result<Sent> {
        let body = fixtures::to_body(event);
        let signature = self.secrets.first().sign(fixtures::unix_now(), &body);
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", signature)
            .body(body)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the receiver at {} (is scripts/dev.sh running?)",
                    self.url
                )
            })?;
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        let id = event["id"].as_str().unwrap_or("?").to_owned();
        let event_type = event["type"].as_str().unwrap_or("?").to_owned();
        if !status.is_success() {
            bail!("the receiver answered {event_type} {id} with {status} {answer}");
        }
        Ok(Sent {
            id,
            event_type,
            answer: format!("{} {answer}", status.as_u16()),
        })
    }
}

/// The database the worker writes. Its URL is never printed (it may hold a password): a shell
/// reaches it as `$DATABASE_URL`.
pub struct Database {
    pub pool: PgPool,
    /// The file the URL was read from (scripts/dev.sh's .dev/database-url), when not from
    /// DATABASE_URL.
    pub url_file: Option<PathBuf>,
}

/// How a story is told.
pub struct Telling {
    pub shape: ApiShape,
    /// The longest wait for the worker to apply one chapter.
    pub wait: Duration,
    /// The worker's BILLHOOK_EMAIL_DIR, to point at each email's file.
    pub email_dir: Option<PathBuf>,
    /// How to run `billhook-worker` from here.
    pub worker_command: String,
}

/// Creates the story's order as the host application does before sending its customer to
/// Checkout (docs/operations.md shows the same statement): pending, by its reference and
/// Checkout Session. Returns the order's id.
pub async fn create_order(pool: &PgPool, cast: &Cast) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "INSERT INTO orders (reference, checkout_ref, amount, currency) VALUES ($1, $2, $3, $4)
         RETURNING id",
    )
    .bind(&cast.order_reference)
    .bind(&cast.session)
    .bind(PURCHASE_AMOUNT)
    .bind(CURRENCY)
    .fetch_one(pool)
    .await
}

/// Tells `story` with a fresh cast: creates what the application would, sends each chapter's
/// events in order (each answered 2xx before the next), waits for the worker after each,
/// then prints what Billhook did.
pub async fn tell(
    story: Story,
    receiver: &Receiver,
    db: &Database,
    how: &Telling,
) -> anyhow::Result<()> {
    let cast = Cast::fresh();
    let now = fixtures::unix_now();
    println!("Story {}: {}", story.name(), story.summary());
    println!(
        "  customer {} <{}>, API version {}",
        cast.customer,
        cast.email,
        how.shape.api_version()
    );
    if story.app_creates_order() {
        let id = create_order(&db.pool, &cast).await.context(
            "cannot create the story's order (has `billhook-worker migrate` run on this database?)",
        )?;
        println!(
            "  the app created order {} ({id}) for Checkout Session {}: pending, {}",
            cast.order_reference,
            cast.session,
            account::money(PURCHASE_AMOUNT, CURRENCY)
        );
    }
    let mut sent = Vec::new();
    for chapter in story.chapters(how.shape, &cast, now) {
        let mut ids = Vec::new();
        for event in &chapter.events {
            let accepted = receiver.send(event).await?;
            println!(
                "  sent {:<38} {}  -> {}",
                accepted.event_type, accepted.id, accepted.answer
            );
            ids.push(accepted.id.clone());
            sent.push(accepted);
        }
        let took = wait::until_applied(&db.pool, &ids, how.wait).await?;
        println!("  the worker applied them in {:.1} s", took.as_secs_f64());
        let go_on = match chapter.then {
            Then::Continue => true,
            Then::FirstDunningStep => {
                wait::first_dunning_step(&db.pool, &cast.subscription, how.wait).await?;
                true
            }
            Then::DunningRunEnds => wait::dunning_run_ends(&db.pool, &cast.subscription, how.wait)
                .await?
                .story_goes_on(),
        };
        if !go_on {
            break;
        }
    }
    wait::follow_ups_settle(&db.pool, &cast, &sent, how.wait).await?;
    println!();
    account::print(db, &cast, &sent, how).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_receiver_that_never_answers_is_an_error_at_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/api/webhooks/stripe",
            listener.local_addr().expect("addr")
        );
        // Accepts and holds connections, never answering.
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let secrets = WebhookSecrets::parse("whsec_test").expect("secret");
        let receiver =
            Receiver::new(url, secrets, std::time::Duration::from_millis(300)).expect("client");
        let event = crate::fixtures::event("customer.created", crate::fixtures::ApiShape::Dahlia)
            .expect("fixture");
        let sent = tokio::time::timeout(std::time::Duration::from_secs(5), receiver.send(&event))
            .await
            .expect("the deadline, not the test's limit, ends the post");
        assert!(sent.is_err());
    }
}
