//! The scale-out deployment in miniature (issue 16): two receivers and three worker processes
//! on one database, every billing story for many customers delivered through both receivers
//! at once (each event twice, once to each, as Stripe's retries and a load balancer make
//! happen), and every event applied exactly once, to the same state one process applying them
//! in order reaches.
//!
//! The receivers are the receiver's own `Application` in this process, each with its pool and
//! ingest writers, as two pods are; the workers are `billhook-worker run` processes.

use std::time::Duration;

use billhook_testkit::billing::{Applier, context, snapshot};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::objects::Cast;
use billhook_testkit::stories::Story;
use billhook_testkit::worker::{RETRY_HORIZON, run_jobs_due_within, wait_for_count};
use billhook_testkit::{TestDatabase, receiver};
use serde_json::Value;
use tokio::sync::oneshot;

use super::worker::Running;

/// Customers per story.
const COPIES: usize = 6;

struct Receiver {
    url: String,
    secret: billhook_core::stripe::signature::WebhookSecret,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    async fn start(db: &TestDatabase) -> Self {
        let settings = receiver::settings(&db.url);
        let app = billhook_receiver::Application::build(settings.clone())
            .await
            .unwrap_or_else(|e| panic!("receiver starts: {e:#}"));
        let url = format!("http://127.0.0.1:{}/api/webhooks/stripe", app.port());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            url,
            secret: settings.secrets.first().clone(),
            client: reqwest::Client::new(),
            stop: Some(stop),
        }
    }

    /// Posts `event` as Stripe does: signed, and again after a while when the answer is 503
    /// (the receiver could not store it in time) or 429, until it is accepted.
    async fn deliver(&self, event: &Value) -> u16 {
        let body = fixtures::to_body(event);
        for _ in 0..100 {
            let signature = self.secret.sign(fixtures::unix_now(), &body);
            let status = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body.clone())
                .send()
                .await
                .expect("the receiver answers")
                .status()
                .as_u16();
            if !matches!(status, 503 | 429) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{} refused for 20 s", event["id"]);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Every story for `COPIES` customers each, with the orders the application creates first.
fn stories(now: i64) -> (Vec<Vec<Value>>, Vec<(String, String)>) {
    let mut customers = Vec::new();
    let mut orders = Vec::new();
    for (s, story) in Story::ALL.into_iter().enumerate() {
        for copy in 0..COPIES {
            let cast = Cast::with_suffix(&format!("scale{s}x{copy}"));
            if story.app_creates_order() {
                orders.push((cast.order_reference.clone(), cast.session.clone()));
            }
            let events: Vec<Value> = story
                .chapters(ApiShape::Dahlia, &cast, now)
                .into_iter()
                .flat_map(|c| c.events)
                .collect();
            customers.push(events);
        }
    }
    (customers, orders)
}

async fn create_orders(pool: &sqlx::PgPool, orders: &[(String, String)]) {
    for (reference, session) in orders {
        billhook_testkit::billing::create_order(pool, reference, session).await;
    }
}

#[tokio::test]
async fn two_receivers_and_three_workers_apply_every_event_of_every_story_exactly_once() {
    let db = TestDatabase::new().await;
    let now = fixtures::unix_now();
    let (customers, orders) = stories(now);
    create_orders(&db.pool, &orders).await;
    let receivers = [Receiver::start(&db).await, Receiver::start(&db).await];
    let _workers = [
        Running::start(&db.url),
        Running::start(&db.url),
        Running::start(&db.url),
    ];
    // All three processing before the first delivery (each registers its ProcessEvent worker).
    wait_for_count(
        &db.pool,
        "SELECT count(*) FROM apalis.workers WHERE worker_type = 'billhook.process_event'",
        3,
        Duration::from_secs(60),
    )
    .await;

    // Each customer's events in order (as Stripe sends one object's events), customers side
    // by side; each event to both receivers at once.
    let receivers = &receivers;
    let sends = customers.iter().map(|events| async move {
        for event in events {
            let (a, b) = tokio::join!(receivers[0].deliver(event), receivers[1].deliver(event));
            assert_eq!((a, b), (200, 200), "{}", event["id"]);
        }
    });
    futures_util::future::join_all(sends).await;
    let delivered: usize = customers.iter().map(Vec::len).sum();
    assert!(delivered > 150, "{delivered}");

    run_jobs_due_within(&db.pool, RETRY_HORIZON, Duration::from_secs(180)).await;

    // Stored once each, one job each, all finished, nothing failed.
    assert_eq!(db.count("webhook_events").await, delivered as i64);
    assert_eq!(
        db.count("apalis.jobs WHERE job_type = 'billhook.process_event'")
            .await,
        delivered as i64
    );
    assert_eq!(
        db.count("webhook_events WHERE status NOT IN ('applied', 'stale', 'ignored')")
            .await,
        0
    );
    let failures: Vec<(String, i32, bool, String)> =
        sqlx::query_as("SELECT kind, attempt, retryable, error FROM job_failures ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("job_failures");
    assert!(failures.is_empty(), "jobs failed: {failures:#?}");
    // Applied once: no audit entry written twice, and every process took part.
    assert_eq!(
        db.count(
            "(SELECT event_id, entity, entity_id, action, detail::text FROM audit_log \
              WHERE event_id <> '' GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1) twice"
        )
        .await,
        0
    );
    // Which process fetches what is up to them; more than one did.
    let sharing = db
        .count("(SELECT DISTINCT lock_by FROM apalis.jobs WHERE job_type = 'billhook.process_event') w")
        .await;
    assert!(
        sharing >= 2,
        "{sharing} worker process(es) applied the events"
    );

    // The same state as one process applying every event once, in order.
    let baseline = TestDatabase::new().await;
    create_orders(&baseline.pool, &orders).await;
    let applier = Applier::new(&baseline.pool, context());
    for events in &customers {
        for event in events {
            applier.deliver(event).await.expect("applied");
        }
    }
    let (scaled, single) = (snapshot(&db.pool).await, snapshot(&baseline.pool).await);
    for (table, rows) in single.as_object().expect("tables") {
        assert_eq!(&scaled[table], rows, "{table} differs from one process's");
    }
}
