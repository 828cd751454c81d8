//! Every refused request gets its status code, a small fixed body, and writes nothing.

use std::time::{Duration, Instant};

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::{TestDatabase, TestReceiver, receiver};
use sqlx::postgres::PgPoolOptions;

async fn assert_nothing_written(app: &TestReceiver) {
    assert_eq!(app.db.count("webhook_events").await, 0);
    assert_eq!(app.db.count("apalis.jobs").await, 0);
}

fn event_body() -> Vec<u8> {
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    fixtures::to_body(&event)
}

async fn error_of(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    body["error"].as_str().expect("an error message").to_owned()
}

#[tokio::test]
async fn a_request_without_a_signature_is_401() {
    let app = TestReceiver::spawn().await;
    let response = app.post(event_body(), None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_of(response).await, "invalid signature");
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_forged_or_stale_signature_is_401() {
    let app = TestReceiver::spawn().await;
    let body = event_body();
    let forged = billhook_core::stripe::WebhookSecret::new("x", "whsec_forger")
        .sign(fixtures::unix_now(), &body);
    let stale = app.secret.sign(fixtures::unix_now() - 301, &body);
    for signature in [forged, stale, "t=1,v1=zz".to_owned()] {
        let response = app.post(body.clone(), Some(signature)).await;
        assert_eq!(response.status(), 401);
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_verified_body_that_is_not_an_event_is_400() {
    let app = TestReceiver::spawn().await;
    for body in [
        b"not json at all".to_vec(),
        br#"{"object":"event","type":"x.y","created":1}"#.to_vec(),
        br#"{"id":"cus_123","object":"customer","type":"x.y","created":1,"data":{"object":{}}}"#
            .to_vec(),
        br#"{"id":"evt_1","object":"event","type":"x.y","created":1}"#.to_vec(),
    ] {
        let signature = app.secret.sign(fixtures::unix_now(), &body);
        let response = app.post(body, Some(signature)).await;
        assert_eq!(response.status(), 400);
        assert_eq!(error_of(response).await, "malformed event");
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_body_over_the_cap_is_413() {
    let app = TestReceiver::spawn_with(|s| s.max_body_bytes = 2048).await;
    let mut body = event_body();
    body.resize(4096, b' ');
    let signature = app.secret.sign(fixtures::unix_now(), &body);
    let response = app.post(body, Some(signature)).await;
    assert_eq!(response.status(), 413);
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn repeated_failures_from_one_address_become_429_but_verified_events_pass() {
    let app = TestReceiver::spawn_with(|s| {
        s.reject_burst = 3;
        s.reject_limit_per_minute = 1;
    })
    .await;
    let statuses = {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(
                app.post(event_body(), Some("t=1,v1=00".into()))
                    .await
                    .status(),
            );
        }
        statuses
    };
    assert_eq!(statuses, [401, 401, 401, 429, 429]);

    let event = fixtures::event("customer.created", ApiShape::Acacia).expect("fixture");
    assert_eq!(app.deliver(&event).await.status(), 200);
    assert_eq!(app.db.count("webhook_events").await, 1);
}

#[tokio::test]
async fn when_the_job_cannot_be_enqueued_the_event_is_rolled_back_and_the_answer_is_5xx() {
    let app = TestReceiver::spawn().await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_jobs() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'jobs refused for the test'; END $$; \
         CREATE TRIGGER refuse_jobs BEFORE INSERT ON apalis.jobs \
           FOR EACH ROW EXECUTE FUNCTION refuse_jobs();",
    )
    .execute(&app.db.pool)
    .await
    .expect("install the failing trigger");

    let event = fixtures::event("customer.updated", ApiShape::Dahlia).expect("fixture");
    let response = app.deliver(&event).await;

    assert!(response.status().is_server_error(), "{}", response.status());
    let message = error_of(response).await;
    assert!(
        !message.contains("jobs refused"),
        "internal detail leaked: {message}"
    );
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_within_the_timeout_and_recovers() {
    let db = TestDatabase::new().await;
    let mut settings = receiver::settings(&db.url);
    settings.database.timeout = Duration::from_millis(300);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.database.timeout)
        .connect(&db.url)
        .await
        .expect("pool");
    let app = billhook_receiver::Application::build_with_pool(settings.clone(), pool.clone())
        .expect("app");
    let app = TestReceiver::start(db, settings, app);
    let held = pool.acquire().await.expect("take the only connection");

    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    let started = Instant::now();
    let response = app.deliver(&event).await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the answer was bounded"
    );
    assert_nothing_written(&app).await;

    drop(held);
    assert_eq!(app.deliver(&event).await.status(), 200);
}

#[tokio::test]
async fn a_database_that_is_down_answers_503() {
    let db = TestDatabase::new().await;
    let mut settings = receiver::settings(&db.url);
    settings.database.timeout = Duration::from_millis(500);
    // Nothing listens on port 1: every connection attempt fails.
    let pool = PgPoolOptions::new()
        .acquire_timeout(settings.database.timeout)
        .connect_lazy("postgres://postgres@127.0.0.1:1/nowhere")
        .expect("lazy pool");
    let app = billhook_receiver::Application::build_with_pool(settings.clone(), pool).expect("app");
    let app = TestReceiver::start(db, settings, app);

    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    let response = app.deliver(&event).await;

    assert_eq!(response.status(), 503);
    assert_eq!(
        error_of(response).await,
        "temporarily unavailable, retry later"
    );
    assert_eq!(app.admin_get("/readyz").await.status(), 503);
    let document = app.client.get(app.webhook_url()).send().await.expect("GET");
    assert_eq!(document.status(), 503);
    let body: serde_json::Value = document.json().await.expect("JSON");
    assert_eq!(body["can_store_events"], false);
    assert_eq!(body["status"], "unavailable");
}

#[tokio::test]
async fn other_methods_are_not_allowed() {
    let app = TestReceiver::spawn().await;
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = app
            .client
            .request(method.clone(), app.webhook_url())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 405, "{method}");
    }
}

/// GET on the webhook path: whether events can be stored, and the handled types to copy into
/// Stripe's endpoint settings; nothing else (no version, setting or count).
/// The public GET checks the database at most once a second: a flood of them costs it nothing
/// more, and the answer is at most a second old.
#[tokio::test]
async fn get_on_the_webhook_path_checks_the_database_at_most_once_a_second() {
    let app = TestReceiver::spawn().await;
    let status = || async {
        app.client
            .get(app.webhook_url())
            .send()
            .await
            .expect("GET")
            .status()
    };
    assert_eq!(status().await, 200);
    // Billhook's migration history gone: the database no longer holds what this build needs.
    sqlx::raw_sql("ALTER TABLE _sqlx_migrations RENAME TO hidden_migrations")
        .execute(&app.db.pool)
        .await
        .expect("hide the history");
    assert_eq!(status().await, 200, "the answer of the last second");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status().await, 503, "checked again after a second");
}

#[tokio::test]
async fn get_on_the_webhook_path_says_whether_events_can_be_stored() {
    let app = TestReceiver::spawn().await;
    for path in billhook_receiver::WEBHOOK_PATHS {
        let url = format!("{}{path}", app.address);
        let response = app.client.get(&url).send().await.expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.expect("JSON");
        let handled: Vec<&str> = billhook_core::stripe::event_types::HANDLED.to_vec();
        assert_eq!(
            body,
            serde_json::json!({
                "status": "ok",
                "can_store_events": true,
                "accepts": "POST with a Stripe-Signature header",
                "handled_event_types": handled,
            })
        );
    }
}

/// `rejected_deliveries` as (reason, total), by reason.
async fn rejected(app: &TestReceiver) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT reason, sum(count)::bigint FROM rejected_deliveries GROUP BY reason ORDER BY reason",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("rejected_deliveries")
}

/// Waits until `rejected_deliveries` holds `total` refusals in all.
async fn wait_for_total(app: &TestReceiver, total: i64) -> Vec<(String, i64)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = rejected(app).await;
        if rows.iter().map(|(_, n)| n).sum::<i64>() == total {
            return rows;
        }
        assert!(Instant::now() < deadline, "never {total} in all: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn refused_deliveries_are_counted_per_reason_in_the_database() {
    let app = TestReceiver::spawn().await;
    let body = event_body();
    let forged = billhook_core::stripe::WebhookSecret::new("x", "whsec_forger")
        .sign(fixtures::unix_now(), &body);
    let stale = app.secret.sign(fixtures::unix_now() - 301, &body);
    assert_eq!(
        app.post(body.clone(), Some(forged.clone())).await.status(),
        401
    );
    assert_eq!(app.post(body.clone(), Some(forged)).await.status(), 401);
    assert_eq!(app.post(body.clone(), Some(stale)).await.status(), 401);
    assert_eq!(app.post(body.clone(), None).await.status(), 401);
    let not_an_event = b"not json at all".to_vec();
    let signature = app.secret.sign(fixtures::unix_now(), &not_an_event);
    assert_eq!(app.post(not_an_event, Some(signature)).await.status(), 400);
    // A delivery that is stored is no rejection.
    let good = app.secret.sign(fixtures::unix_now(), &body);
    assert_eq!(app.post(body, Some(good)).await.status(), 200);

    let rows = wait_for_total(&app, 5).await;
    assert_eq!(
        rows,
        [
            ("malformed_event".to_owned(), 1),
            ("mismatch".to_owned(), 2),
            ("missing_header".to_owned(), 1),
            ("outside_tolerance".to_owned(), 1),
        ]
    );
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn a_flood_of_forgeries_costs_a_row_per_minute_and_reason() {
    let app = TestReceiver::spawn_with(|s| {
        s.reject_limit_per_minute = 1_000_000;
        s.reject_burst = 1_000_000;
    })
    .await;
    let body = event_body();
    let forged = billhook_core::stripe::WebhookSecret::new("x", "whsec_forger")
        .sign(fixtures::unix_now(), &body);
    for _ in 0..1_000 {
        assert_eq!(
            app.post(body.clone(), Some(forged.clone())).await.status(),
            401
        );
    }
    let rows = wait_for_total(&app, 1_000).await;
    assert_eq!(rows, [("mismatch".to_owned(), 1_000)]);
    let stored = app.db.count("rejected_deliveries").await;
    assert!(
        stored <= 2,
        "one row a minute (two across a minute's turn), not {stored}"
    );
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn the_last_counts_are_written_at_shutdown() {
    let app = TestReceiver::spawn_with(|s| s.rejections_flush = Duration::from_secs(3600)).await;
    for _ in 0..3 {
        assert_eq!(app.post(event_body(), None).await.status(), 401);
    }
    let mut app = app;
    app.stop_server().await.expect("stops");
    let written: i64 = sqlx::query_scalar("SELECT sum(count)::bigint FROM rejected_deliveries")
        .fetch_one(&app.db.pool)
        .await
        .expect("sum");
    assert_eq!(written, 3);
}

#[tokio::test]
async fn counts_the_database_refuses_are_kept_for_the_next_flush() {
    let db = TestDatabase::new().await;
    let rejections = billhook_receiver::rejections::Rejections::default();
    rejections.record("mismatch");
    rejections.record("mismatch");
    rejections.record("outside_tolerance");
    let down = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:9/nowhere")
        .expect("a lazy pool");
    assert!(
        rejections.flush(&down).await.is_err(),
        "nothing listens there"
    );
    assert_eq!(rejections.pending(), 2, "both reasons kept");
    rejections.record("mismatch");
    assert_eq!(rejections.flush(&db.pool).await.expect("written"), 2);
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT reason, count FROM rejected_deliveries ORDER BY reason")
            .fetch_all(&db.pool)
            .await
            .expect("rows");
    assert_eq!(
        rows,
        [
            ("mismatch".to_owned(), 3),
            ("outside_tolerance".to_owned(), 1)
        ]
    );
    assert_eq!(rejections.flush(&db.pool).await.expect("nothing left"), 0);
}
