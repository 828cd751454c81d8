//! The webhook endpoint against a real PostgreSQL database: what is stored, what is enqueued,
//! and what is refused.

use billhook_core::jobs::PROCESS_EVENT_QUEUE;
use billhook_testkit::TestReceiver;
use billhook_testkit::fixtures::{self, ApiShape};
use serde_json::Value;

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[tokio::test]
async fn a_verified_event_is_stored_with_its_job_in_one_go() {
    let app = TestReceiver::spawn().await;
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    let id = event["id"].as_str().expect("id").to_owned();

    let response = app.deliver(&event).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await,
        serde_json::json!({"received": true, "duplicate": false})
    );
    let (status, secret_label, event_type): (String, String, String) =
        sqlx::query_as("SELECT status, secret_label, type FROM webhook_events WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.db.pool)
            .await
            .expect("event row");
    assert_eq!(status, "received");
    assert_eq!(secret_label, "primary");
    assert_eq!(event_type, "customer.created");
    let (queue, key, job, max_attempts): (String, String, Vec<u8>, i32) =
        sqlx::query_as("SELECT job_type, idempotency_key, job, max_attempts FROM apalis.jobs")
            .fetch_one(&app.db.pool)
            .await
            .expect("exactly one job");
    assert_eq!(queue, PROCESS_EVENT_QUEUE);
    assert_eq!(key, id);
    assert_eq!(max_attempts, 10);
    let job: Value = serde_json::from_slice(&job).expect("job is JSON");
    assert_eq!(job, serde_json::json!({"v": "1", "event_id": id}));
}

#[tokio::test]
async fn the_raw_body_is_kept_byte_for_byte() {
    let app = TestReceiver::spawn().await;
    let event = fixtures::event("customer.created", ApiShape::Acacia).expect("fixture");
    let mut body = fixtures::to_body(&event);
    body.extend_from_slice(b"\n\n"); // trailing bytes a re-serialisation would drop
    let signature = app.secret.sign(fixtures::unix_now(), &body);

    assert_eq!(
        app.post(body.clone(), Some(signature.clone()))
            .await
            .status(),
        200
    );

    let (stored, headers): (Vec<u8>, Value) =
        sqlx::query_as("SELECT body, headers FROM webhook_events")
            .fetch_one(&app.db.pool)
            .await
            .expect("event row");
    assert_eq!(stored, body);
    assert_eq!(headers["stripe-signature"], signature.as_str());
    assert!(
        headers["user-agent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("Stripe/"))
    );
}

#[tokio::test]
async fn a_redelivered_event_is_acknowledged_as_duplicate_and_enqueued_once() {
    let app = TestReceiver::spawn().await;
    let event = fixtures::event("customer.updated", ApiShape::Dahlia).expect("fixture");

    assert_eq!(json(app.deliver(&event).await).await["duplicate"], false);
    let second = app.deliver(&event).await;

    assert_eq!(second.status(), 200);
    assert_eq!(json(second).await["duplicate"], true);
    assert_eq!(app.db.count("webhook_events").await, 1);
    assert_eq!(app.db.count("apalis.jobs").await, 1);
}

#[tokio::test]
async fn an_unhandled_event_type_is_stored_as_ignored_without_a_job() {
    let app = TestReceiver::spawn().await;
    let object = fixtures::object(ApiShape::Dahlia, "customer");
    let event = fixtures::envelope("customer.discount.created", ApiShape::Dahlia, object);

    let response = app.deliver(&event).await;

    assert_eq!(response.status(), 200);
    let status: String = sqlx::query_scalar("SELECT status FROM webhook_events")
        .fetch_one(&app.db.pool)
        .await
        .expect("event row");
    assert_eq!(status, "ignored");
    assert_eq!(app.db.count("apalis.jobs").await, 0);
    let metrics = app
        .admin_get("/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains(
            r#"billhook_receiver_ignored_events_total{type="customer.discount.created"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_built_in_event_in_both_shapes_is_stored_and_only_handled_ones_enqueued() {
    let app = TestReceiver::spawn().await;
    let (mut handled, mut total) = (0, 0);
    for shape in ApiShape::ALL {
        for event_type in fixtures::EVENT_TYPES {
            let event = fixtures::event(event_type, shape)
                .unwrap_or_else(|| panic!("a built-in {event_type} event"));
            assert_eq!(app.deliver(&event).await.status(), 200, "{event_type}");
            total += 1;
            if billhook_core::stripe::event_types::is_handled(event_type) {
                handled += 1;
            }
        }
    }
    assert!(handled > 0);
    assert_eq!(app.db.count("webhook_events").await, total);
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'received'")
            .await,
        handled
    );
    assert_eq!(app.db.count("apalis.jobs").await, handled);
}

#[tokio::test]
async fn the_short_path_alias_works_too() {
    let app = TestReceiver::spawn().await;
    let event = fixtures::event("customer.updated", ApiShape::Dahlia).expect("fixture");
    let body = fixtures::to_body(&event);
    let signature = app.secret.sign(fixtures::unix_now(), &body);
    let response = app
        .client
        .post(format!("{}/webhooks/stripe", app.address))
        .header("stripe-signature", signature)
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(app.db.count("webhook_events").await, 1);
}

#[tokio::test]
async fn concurrent_deliveries_and_redeliveries_are_each_stored_once() {
    let app = TestReceiver::spawn().await;
    let events: Vec<Value> = (0..40)
        .map(|i| {
            let kind = if i % 2 == 0 {
                "customer.created"
            } else {
                "invoice.paid"
            };
            fixtures::event(kind, ApiShape::Dahlia).expect("fixture")
        })
        .collect();

    // Every event three times, all in flight at once: batches hold copies of one event.
    let deliveries = events.iter().cycle().take(events.len() * 3);
    let app = &app;
    let responses = futures_util::future::join_all(deliveries.map(|e| async move {
        let response = app.deliver(e).await;
        assert_eq!(response.status(), 200);
        (
            e["id"].as_str().expect("id").to_owned(),
            json(response).await,
        )
    }))
    .await;

    for event in &events {
        let id = event["id"].as_str().expect("id");
        let firsts = responses
            .iter()
            .filter(|(r, body)| r == id && body["duplicate"] == false)
            .count();
        assert_eq!(firsts, 1, "{id} is new exactly once");
    }
    assert_eq!(app.db.count("webhook_events").await, 40);
    assert_eq!(app.db.count("apalis.jobs").await, 40);
    let keys: i64 = sqlx::query_scalar("SELECT count(DISTINCT idempotency_key) FROM apalis.jobs")
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!(keys, 40);
}
