//! Reconciliation in this process: what it stores, what it leaves alone, how it pages, how it
//! meets Stripe's failures, how it resumes, and what it reports.

use std::time::Duration;

use billhook_testkit::TestDatabase;
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::stripe_api::StripeStandIn;
use billhook_testkit::worker::{TestWorker, run_due_jobs};
use billhook_worker::reconcile::metrics::ReconcileMetrics;
use billhook_worker::reconcile::settings::ReconcileSettings;
use billhook_worker::reconcile::{Options, Outcome, Reconciler, RunError, Summary, Trigger};
use billhook_worker::stripe::StripeApi;
use serde_json::Value;

const KEY: &str = "sk_test_reconcile_secret_key";

/// A customer.created event for `cus_r{n}`, created `minutes_ago`.
fn event(n: usize, minutes_ago: i64) -> Value {
    let mut event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    event["data"]["object"]["id"] = format!("cus_r{n:05}").into();
    event["created"] = (fixtures::unix_now() - minutes_ago * 60).into();
    event
}

fn reconciler(db: &TestDatabase, stripe: &StripeStandIn) -> Reconciler {
    reconciler_with(db, stripe, ReconcileSettings::default())
}

fn reconciler_with(
    db: &TestDatabase,
    stripe: &StripeStandIn,
    settings: ReconcileSettings,
) -> Reconciler {
    let api = StripeApi::new(
        stripe.base.parse().expect("URL"),
        KEY.to_owned().into(),
        Duration::from_secs(5),
    )
    .expect("client")
    .with_rate(1000);
    Reconciler {
        pool: db.pool.clone(),
        api,
        settings,
        metrics: ReconcileMetrics::new(),
    }
}

async fn run(reconciler: &Reconciler, options: &Options) -> Summary {
    match reconciler.run(Trigger::Command, options).await {
        Ok(Outcome::Ran(summary)) => summary,
        other => panic!("the run did not run: {other:?}"),
    }
}

fn since(minutes_ago: i64) -> Options {
    Options {
        since: Some(chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)),
        dry_run: false,
    }
}

/// The value of the gauge `name` in `registry`.
fn gauge(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == name)
        .map(|f| f.get_metric()[0].get_gauge().get_value())
        .unwrap_or_else(|| panic!("{name} is exported"))
}

async fn origins(db: &TestDatabase) -> Vec<(String, String)> {
    sqlx::query_as("SELECT id, origin FROM webhook_events ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("origins")
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn missing_events_are_stored_and_applied_once_and_stored_ones_are_left_alone() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    let events: Vec<Value> = (0..5).map(|n| event(n, 10)).collect();
    for e in &events {
        stripe.add_event(e.clone());
    }
    // Two arrived by webhook; three were lost.
    billhook_testkit::billing::store(&db.pool, &events[0]).await;
    billhook_testkit::billing::store(&db.pool, &events[3]).await;
    let before: Vec<u8> = sqlx::query_scalar("SELECT body FROM webhook_events WHERE id = $1")
        .bind(events[0]["id"].as_str())
        .fetch_one(&db.pool)
        .await
        .expect("body");

    // No watermark yet: the first run starts at the first stored event.
    let summary = run(&reconciler(&db, &stripe), &Options::default()).await;

    assert_eq!(summary.recovered, 3, "{summary:?}");
    assert_eq!(summary.seen, 5);
    let origins = origins(&db).await;
    for (i, e) in events.iter().enumerate() {
        let id = e["id"].as_str().expect("id");
        let expected = if i == 0 || i == 3 {
            "webhook"
        } else {
            "events_api"
        };
        assert!(
            origins.contains(&(id.to_owned(), expected.to_owned())),
            "{id} should be {expected}: {origins:?}"
        );
    }
    let after: Vec<u8> = sqlx::query_scalar("SELECT body FROM webhook_events WHERE id = $1")
        .bind(events[0]["id"].as_str())
        .fetch_one(&db.pool)
        .await
        .expect("body");
    assert_eq!(before, after, "a stored event is left as it was");
    let recovered_without_signature = count(
        &db,
        "SELECT count(*) FROM webhook_events WHERE origin = 'events_api' \
           AND signed_at IS NULL AND secret_label IS NULL AND status = 'received'",
    )
    .await;
    assert_eq!(recovered_without_signature, 3);

    let worker = TestWorker::spawn(&db.pool).await;
    run_due_jobs(&db.pool).await;
    worker.stop().await.expect("worker stops");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_events WHERE status = 'applied'"
        )
        .await,
        5
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM customers WHERE id LIKE 'cus_r%'").await,
        5
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit_log WHERE entity = 'customer'"
        )
        .await,
        5,
        "each event applied exactly once"
    );

    let again = run(&reconciler(&db, &stripe), &Options::default()).await;
    assert_eq!(
        again.recovered, 0,
        "a second run recovers nothing: {again:?}"
    );
    let runs: Vec<(String, i32, Option<String>)> =
        sqlx::query_as("SELECT outcome, events_recovered, error FROM reconcile_runs ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("runs");
    assert_eq!(
        runs,
        vec![
            ("succeeded".to_owned(), 3, None),
            ("succeeded".to_owned(), 0, None)
        ]
    );
    let authorization = stripe.requests()[0].authorization.clone();
    assert_eq!(
        authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    stripe.stop().await;
}

#[tokio::test]
async fn pages_are_followed_to_the_end_and_an_event_delivered_during_the_run_is_stored_once() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    let events: Vec<Value> = (0..250).map(|n| event(n, 20)).collect();
    for e in &events {
        stripe.add_event(e.clone());
    }
    // Newest first, equal `created`: the last added is on the first page, the first on the last.
    let late = events[0].clone();
    stripe.stall_after("/v1/events", 1);
    let reconciler = reconciler(&db, &stripe);
    let task = tokio::spawn(async move { run(&reconciler, &since(30)).await });
    while stripe.count("GET", "/v1/events") < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The run holds its first page and waits for the second: the webhook arrives now.
    billhook_testkit::billing::store(&db.pool, &late).await;
    stripe.release();
    let summary = task.await.expect("the run ends");

    assert_eq!(summary.pages, 3);
    assert_eq!(summary.seen, 250);
    assert_eq!(
        summary.recovered, 249,
        "the delivered event is not recovered again"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 250);
    let late_origin: String = sqlx::query_scalar("SELECT origin FROM webhook_events WHERE id = $1")
        .bind(late["id"].as_str())
        .fetch_one(&db.pool)
        .await
        .expect("origin");
    assert_eq!(late_origin, "webhook");
    let cursors = stripe
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/events" && r.query.contains("starting_after="))
        .count();
    assert_eq!(cursors, 2, "pages two and three follow the cursor");
    let query = &stripe.requests()[0].query;
    assert!(query.contains("limit=100"), "{query}");
    assert!(query.contains("types%5B%5D=customer.created"), "{query}");
    assert!(query.contains("created%5Bgte%5D="), "{query}");

    let worker = TestWorker::spawn(&db.pool).await;
    run_due_jobs(&db.pool).await;
    worker.stop().await.expect("worker stops");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit_log WHERE entity = 'customer'"
        )
        .await,
        250,
        "every event applied once, the one that came both ways included"
    );
    stripe.stop().await;
}

#[tokio::test]
async fn too_many_requests_and_server_errors_are_retried() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    stripe.add_event(event(1, 10));
    stripe.fail_next_path("/v1/events", 429, 1, Some(1));
    stripe.fail_next_path("/v1/events", 500, 1, None);

    let started = std::time::Instant::now();
    let summary = run(&reconciler(&db, &stripe), &since(15)).await;

    assert_eq!(summary.recovered, 1);
    assert_eq!(
        stripe.count("GET", "/v1/events"),
        3,
        "429, then 500, then the page"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    stripe.stop().await;
}

#[tokio::test]
async fn a_refused_key_stops_the_run_with_a_clear_error_and_changes_nothing() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    stripe.add_event(event(1, 10));
    for (status, names) in [
        (401, "BILLHOOK_STRIPE_API_KEY is not a valid key"),
        (403, "read access"),
    ] {
        stripe.fail_next_path("/v1/events", status, 1, None);
        let error = reconciler(&db, &stripe)
            .run(Trigger::Command, &since(15))
            .await
            .expect_err("the key is refused");
        let message = error.to_string();
        assert!(matches!(error, RunError::Failed { .. }), "{message}");
        assert!(message.contains(names), "{message}");
        assert!(!message.contains(KEY), "the key never appears: {message}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM reconcile_state").await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM reconcile_runs WHERE outcome = 'failed' \
                    AND error LIKE '%BILLHOOK_STRIPE_API_KEY%'"
        )
        .await,
        2
    );
    assert_eq!(
        stripe.count("GET", "/v1/events"),
        2,
        "a refused key is not retried"
    );
    stripe.stop().await;
}

#[tokio::test]
async fn a_run_stopped_half_way_keeps_its_windows_and_the_next_run_finishes_the_rest() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    // Three hours of events: three windows, one event in each.
    let events: Vec<Value> = [170, 110, 50]
        .iter()
        .enumerate()
        .map(|(n, m)| event(n, *m))
        .collect();
    for e in &events {
        stripe.add_event(e.clone());
    }
    stripe.stall_after("/v1/events", 2);
    let reconciler_a = reconciler(&db, &stripe);
    let task = tokio::spawn(async move { reconciler_a.run(Trigger::Command, &since(180)).await });
    while stripe.count("GET", "/v1/events") < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Killed while listing the third window.
    task.abort();
    let _ = task.await;
    stripe.release();
    // Its lock went with its connection, as it would with its process.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while billhook_worker::schedule::TaskLock::is_held(&db.pool, billhook_worker::reconcile::TASK)
        .await
        .expect("pg_locks")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 2);
    let watermark: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT watermark FROM reconcile_state")
            .fetch_one(&db.pool)
            .await
            .expect("the finished windows moved the watermark");

    let summary = run(&reconciler(&db, &stripe), &Options::default()).await;

    assert_eq!(summary.recovered, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 3);
    assert_eq!(
        summary.since,
        watermark - chrono::Duration::minutes(5),
        "the next run starts at the watermark, not at the beginning"
    );
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM reconcile_runs ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("runs");
    assert_eq!(outcomes, vec!["interrupted", "succeeded"]);
    stripe.stop().await;
}

#[tokio::test]
async fn a_dry_run_reports_what_is_missing_and_stores_nothing() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    let events: Vec<Value> = (0..3).map(|n| event(n, 10)).collect();
    for e in &events {
        stripe.add_event(e.clone());
    }
    billhook_testkit::billing::store(&db.pool, &events[1]).await;

    let summary = run(
        &reconciler(&db, &stripe),
        &Options {
            dry_run: true,
            ..since(15)
        },
    )
    .await;

    assert_eq!(summary.recovered, 2);
    let mut expected = vec![
        events[0]["id"].as_str().expect("id"),
        events[2]["id"].as_str().expect("id"),
    ];
    expected.sort_unstable();
    let mut sample = summary.sample.clone();
    sample.sort_unstable();
    assert_eq!(sample, expected);
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM reconcile_state").await, 0);
    stripe.stop().await;
}

#[tokio::test]
async fn two_scheduled_runs_at_once_make_one_run() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    for n in 0..120 {
        stripe.add_event(event(n, 10));
    }
    billhook_testkit::billing::store(&db.pool, &event(999, 12)).await;
    let (a, b) = (reconciler(&db, &stripe), reconciler(&db, &stripe));

    let options = Options::default();
    let (first, second) = tokio::join!(
        a.run(Trigger::Schedule, &options),
        b.run(Trigger::Schedule, &options)
    );

    let outcomes = [first.expect("runs"), second.expect("runs")];
    let ran = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Ran(_)))
        .count();
    assert_eq!(ran, 1, "{outcomes:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM reconcile_runs").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 121);
    // Later, within the interval: the schedule leaves it to the next tick.
    let later = a
        .run(Trigger::Schedule, &Options::default())
        .await
        .expect("runs");
    assert!(matches!(later, Outcome::Skipped(_)), "{later:?}");
    stripe.stop().await;
}

#[tokio::test]
async fn an_old_watermark_and_a_disabled_endpoint_are_reported() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    let mut enabled: Vec<&str> = billhook_core::stripe::event_types::HANDLED.to_vec();
    enabled.retain(|t| *t != "invoice.paid");
    stripe.add_object(
        "webhook_endpoints",
        serde_json::json!({ "id": "we_test1", "object": "webhook_endpoint", "created": 1,
            "url": "https://billing.example.com/api/webhooks/stripe", "status": "disabled",
            "enabled_events": enabled, "api_version": "2025-03-31.basil", "livemode": false }),
    );
    stripe.add_event(event(1, 60 * 24 * 29));
    sqlx::query("INSERT INTO reconcile_state (watermark) VALUES (now() - interval '40 days')")
        .execute(&db.pool)
        .await
        .expect("an old watermark");

    for wanted in [
        "we_test1",
        "https://billing.example.com/api/webhooks/stripe/",
    ] {
        let metrics = ReconcileMetrics::new();
        let registry = prometheus::Registry::new();
        metrics.register(&registry);
        let settings = ReconcileSettings {
            webhook_endpoint: Some(wanted.to_owned()),
            ..ReconcileSettings::default()
        };
        let reconciler = Reconciler {
            metrics,
            ..reconciler_with(&db, &stripe, settings)
        };
        let summary = run(&reconciler, &Options::default()).await;

        let problems = summary.problems.join("\n");
        assert!(problems.contains("billhook-worker sync all"), "{problems}");
        assert!(problems.contains("we_test1 is disabled"), "{problems}");
        assert!(problems.contains("invoice.paid"), "{problems}");
        let metric = |name: &str| gauge(&registry, name);
        assert_eq!(metric("billhook_reconcile_endpoint_disabled"), 1.0);
        assert_eq!(metric("billhook_reconcile_endpoint_missing_types"), 1.0);
        assert!(metric("billhook_reconcile_problems") >= 3.0);
        sqlx::query("UPDATE reconcile_state SET watermark = now() - interval '40 days'")
            .execute(&db.pool)
            .await
            .expect("old again");
    }
    // What the Events API still has is recovered, and the run record says what was wrong.
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 1);
    let recorded: (Value, Vec<String>) =
        sqlx::query_as("SELECT endpoint, problems FROM reconcile_runs ORDER BY id LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .expect("the run");
    assert_eq!(recorded.0["status"], "disabled");
    assert_eq!(recorded.0["api_version"], "2025-03-31.basil");
    assert_eq!(recorded.1.len(), 3, "{:?}", recorded.1);
    stripe.stop().await;
}

#[tokio::test]
async fn a_watermark_near_the_horizon_warns_and_the_metric_shows_its_age() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    sqlx::query("INSERT INTO reconcile_state (watermark) VALUES (now() - interval '26 days')")
        .execute(&db.pool)
        .await
        .expect("a watermark");
    let metrics = ReconcileMetrics::new();
    let registry = prometheus::Registry::new();
    metrics.register(&registry);
    let reconciler = Reconciler {
        metrics: metrics.clone(),
        ..reconciler(&db, &stripe)
    };
    let summary = run(&reconciler, &Options::default()).await;
    assert_eq!(summary.problems.len(), 1, "{:?}", summary.problems);
    assert!(summary.problems[0].contains("26 days old"));
    // The run moved the watermark to now (less the grace): the age is minutes now.
    metrics.refresh(&db.pool).await;
    let age = gauge(&registry, "billhook_reconcile_watermark_age_seconds");
    assert!((100.0..400.0).contains(&age), "{age}");
    stripe.stop().await;
}

#[tokio::test]
async fn the_first_run_after_a_sync_recovers_what_happened_since_the_sync_began() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    // The sync ran 50 minutes ago; webhooks came on later and have delivered nothing yet.
    sqlx::query(
        "INSERT INTO sync_runs (started_at, finished_at, types, outcome) \
         VALUES (now() - interval '50 minutes', now() - interval '45 minutes', '{customers}', 'succeeded')",
    )
    .execute(&db.pool)
    .await
    .expect("a sync");
    stripe.add_event(event(1, 40));
    stripe.add_event(event(2, 70));

    let summary = run(&reconciler(&db, &stripe), &Options::default()).await;

    assert_eq!(
        summary.recovered, 1,
        "only the event after the sync: {summary:?}"
    );
    assert_eq!(summary.sample.len(), 1);
    stripe.stop().await;
}

#[tokio::test]
async fn an_event_stripe_lists_that_cannot_be_read_is_skipped_and_reported_the_rest_stored() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    let mut unreadable = event(1, 10);
    unreadable["id"] = "evt_not valid!".into();
    stripe.add_event(unreadable);
    stripe.add_event(event(2, 10));

    let summary = run(&reconciler(&db, &stripe), &since(15)).await;

    assert_eq!(summary.recovered, 1);
    assert_eq!(summary.problems.len(), 1, "{:?}", summary.problems);
    assert!(
        summary.problems[0].contains("cannot read"),
        "{:?}",
        summary.problems
    );
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM reconcile_runs WHERE cardinality(problems) = 1 AND outcome = 'succeeded'").await,
        1
    );
    stripe.stop().await;
}
