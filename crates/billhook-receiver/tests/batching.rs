//! Deliveries stored together: a batch writes every new event with its job in one
//! transaction, tells duplicates apart, and one delivery PostgreSQL refuses cannot fail the
//! others stored with it.

use billhook_core::ingest::{self, Delivery, Origin, Stored};
use billhook_core::jobs;
use billhook_core::stripe::{Envelope, Verified, event_types};
use billhook_receiver::metrics::Metrics;
use billhook_receiver::writer::{IngestQueue, WriterSettings};
use billhook_testkit::TestDatabase;
use billhook_testkit::fixtures::{self, ApiShape};
use futures_util::FutureExt as _;
use serde_json::Value;

fn delivery(event: &Value) -> Delivery {
    let body = fixtures::to_body(event);
    let envelope = Envelope::parse(&body).expect("an event");
    Delivery {
        handled: event_types::is_handled(&envelope.event_type),
        envelope,
        origin: Origin::Webhook(Verified {
            timestamp: fixtures::unix_now(),
            secret_label: "primary".to_owned(),
        }),
        body: body.into(),
        headers: serde_json::json!({}),
        trace: jobs::trace_context(),
    }
}

fn event(event_type: &str) -> Value {
    fixtures::event(event_type, ApiShape::Dahlia).expect("fixture")
}

fn id_of(event: &Value) -> String {
    event["id"].as_str().expect("id").to_owned()
}

/// A queue with one writer: on the single-threaded test runtime, every delivery queued before
/// the test yields is written in one batch.
fn one_writer(db: &TestDatabase, metrics: &Metrics) -> IngestQueue {
    IngestQueue::start(
        db.pool.clone(),
        WriterSettings {
            writers: 1,
            max_batch: 64,
            max_attempts: 5,
        },
        metrics.clone(),
    )
}

async fn job_keys(db: &TestDatabase) -> Vec<String> {
    sqlx::query_scalar("SELECT idempotency_key FROM apalis.jobs ORDER BY idempotency_key")
        .fetch_all(&db.pool)
        .await
        .expect("jobs")
}

#[tokio::test]
async fn a_batch_stores_each_new_event_once_with_its_job_and_reports_duplicates() {
    let db = TestDatabase::new().await;
    let earlier = event("customer.updated");
    ingest::store(&db.pool, &delivery(&earlier), 5)
        .await
        .expect("stored before the batch");
    let a = event("customer.created");
    let b = event("invoice.paid");
    let unhandled = fixtures::envelope(
        "customer.discount.created",
        ApiShape::Dahlia,
        fixtures::object(ApiShape::Dahlia, "customer"),
    );
    assert!(!event_types::is_handled("customer.discount.created"));

    let batch = [&a, &b, &a, &earlier, &unhandled].map(delivery);
    let stored = ingest::store_batch(&db.pool, &batch, 5)
        .await
        .expect("the batch commits");

    use Stored::{Duplicate, New};
    assert_eq!(stored, vec![New, New, Duplicate, Duplicate, New]);
    assert_eq!(db.count("webhook_events").await, 4);
    let mut expected = vec![id_of(&earlier), id_of(&a), id_of(&b)];
    expected.sort();
    assert_eq!(job_keys(&db).await, expected, "one job per handled event");
    let status: String = sqlx::query_scalar("SELECT status FROM webhook_events WHERE id = $1")
        .bind(id_of(&unhandled))
        .fetch_one(&db.pool)
        .await
        .expect("the unhandled event");
    assert_eq!(status, "ignored");
}

#[tokio::test]
async fn a_batch_of_duplicates_only_writes_nothing() {
    let db = TestDatabase::new().await;
    let a = event("customer.created");
    ingest::store(&db.pool, &delivery(&a), 5)
        .await
        .expect("first");

    let stored = ingest::store_batch(&db.pool, &[delivery(&a), delivery(&a)], 5)
        .await
        .expect("nothing to write is no error");

    assert_eq!(stored, vec![Stored::Duplicate, Stored::Duplicate]);
    assert_eq!(db.count("webhook_events").await, 1);
    assert_eq!(db.count("apalis.jobs").await, 1);
}

/// On this (single-threaded) test runtime every `store` below is queued before the one writer
/// runs, so the writer takes them as one batch.
#[tokio::test]
async fn requests_in_flight_together_are_stored_in_one_transaction() {
    let db = TestDatabase::new().await;
    let metrics = Metrics::new();
    let queue = one_writer(&db, &metrics);
    let events: Vec<Value> = (0..10).map(|_| event("customer.created")).collect();

    let stored =
        futures_util::future::join_all(events.iter().map(|e| queue.store(delivery(e)))).await;

    assert!(
        stored.iter().all(|s| matches!(s, Ok(Stored::New))),
        "{stored:?}"
    );
    // now() is the start of the transaction: one value for all of them means one transaction.
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT received_at) FROM webhook_events")
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert_eq!(transactions, 1);
    assert_eq!(db.count("apalis.jobs").await, 10);
    let text = metrics.render();
    assert!(
        text.contains("billhook_receiver_ingest_batch_events_count 1\n")
            && text.contains("billhook_receiver_ingest_batch_events_sum 10\n"),
        "one batch of ten in the metrics: {text}"
    );
}

#[tokio::test]
async fn a_delivery_postgresql_refuses_does_not_fail_the_others_in_its_batch() {
    let db = TestDatabase::new().await;
    let poisoned = event("customer.created");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN IF NEW.id = '{}' THEN RAISE EXCEPTION 'refused for the test'; END IF; \
                    RETURN NEW; END $$; \
         CREATE TRIGGER refuse_event BEFORE INSERT ON webhook_events \
           FOR EACH ROW EXECUTE FUNCTION refuse_event();",
        id_of(&poisoned)
    )))
    .execute(&db.pool)
    .await
    .expect("install the refusing trigger");
    let queue = one_writer(&db, &Metrics::new());
    let mut events: Vec<Value> = (0..6).map(|_| event("customer.created")).collect();
    events.insert(3, poisoned.clone());

    let stored =
        futures_util::future::join_all(events.iter().map(|e| queue.store(delivery(e)))).await;

    for (event, outcome) in events.iter().zip(&stored) {
        if id_of(event) == id_of(&poisoned) {
            assert!(outcome.is_err(), "the refused delivery fails: {outcome:?}");
        } else {
            assert!(matches!(outcome, Ok(Stored::New)), "{outcome:?}");
        }
    }
    assert_eq!(db.count("webhook_events").await, 6);
    let mut expected: Vec<String> = events
        .iter()
        .map(id_of)
        .filter(|id| *id != id_of(&poisoned))
        .collect();
    expected.sort();
    assert_eq!(job_keys(&db).await, expected);
}

#[tokio::test]
async fn a_request_that_gave_up_before_its_batch_was_written_stores_nothing() {
    let db = TestDatabase::new().await;
    let queue = one_writer(&db, &Metrics::new());
    let withdrawn = event("customer.created");
    let kept = event("customer.created");

    // Queued, then dropped before the writer ever ran: the request answered 503 meanwhile.
    let answered = queue.store(delivery(&withdrawn)).now_or_never();
    assert!(answered.is_none(), "not written before the writer ran");
    assert_eq!(
        queue.store(delivery(&kept)).await.expect("stored"),
        Stored::New
    );

    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM webhook_events")
        .fetch_all(&db.pool)
        .await
        .expect("ids");
    assert_eq!(ids, vec![id_of(&kept)]);
}

#[tokio::test]
async fn with_the_database_down_every_request_of_a_batch_is_told_it_is_unavailable() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nowhere")
        .expect("lazy pool");
    let queue = IngestQueue::start(
        pool,
        WriterSettings {
            writers: 1,
            max_batch: 64,
            max_attempts: 5,
        },
        Metrics::new(),
    );
    let events: Vec<Value> = (0..3).map(|_| event("customer.created")).collect();

    let stored =
        futures_util::future::join_all(events.iter().map(|e| queue.store(delivery(e)))).await;

    for outcome in stored {
        let error = outcome.expect_err("nothing can be stored");
        assert!(error.is_unavailable(), "answered 503, not 500: {error}");
    }
}
