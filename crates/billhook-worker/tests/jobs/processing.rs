//! ProcessEvent end to end, in-process: exactly-once effects, retries, dead letters, requeue
//! and graceful shutdown, against a real PostgreSQL database.

use std::time::Duration;

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::worker::{run_due_jobs, wait_for_count};
use billhook_testkit::{TestReceiver, TestWorker};
use billhook_worker::queue::dead_letter::{self, Selection};
use sqlx::PgPool;

async fn deliver_customer_created(app: &TestReceiver) -> String {
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    assert_eq!(app.deliver(&event).await.status(), 200);
    event["id"].as_str().expect("id").to_owned()
}

async fn status_of(pool: &PgPool, event_id: &str) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, last_error FROM webhook_events WHERE id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .expect("event row")
}

/// Makes the first `failures` writes to `customers` fail. A sequence counts them, because a
/// sequence advance survives the rollback of the transaction that failed.
pub(crate) async fn fail_customer_writes(pool: &PgPool, failures: i64) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SEQUENCE injected_failures;
         CREATE FUNCTION inject_failure() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF nextval('injected_failures') <= {failures} THEN
               RAISE EXCEPTION 'injected failure';
             END IF;
             RETURN NEW;
           END $$;
         CREATE TRIGGER inject_failure BEFORE INSERT OR UPDATE ON customers
           FOR EACH ROW EXECUTE FUNCTION inject_failure();"
    )))
    .execute(pool)
    .await
    .expect("install the failure trigger");
}

pub(crate) async fn heal_customer_writes(pool: &PgPool) {
    sqlx::raw_sql("DROP TRIGGER inject_failure ON customers")
        .execute(pool)
        .await
        .expect("drop the failure trigger");
}

#[tokio::test]
async fn an_event_posted_to_the_receiver_is_applied_by_a_running_worker() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let id = deliver_customer_created(&app).await;

    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        1
    );

    assert_eq!(
        status_of(&app.db.pool, &id).await,
        ("applied".into(), 1, None)
    );
    assert_eq!(
        app.db
            .count("customers WHERE id = 'cus_QXg1o8vcGmoR32'")
            .await,
        1
    );
    assert_eq!(app.db.count("audit_log").await, 1);
    worker.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_redelivered_and_rerun_event_is_applied_once() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let event = fixtures::event("customer.created", ApiShape::Acacia).expect("fixture");
    app.deliver(&event).await;
    app.deliver(&event).await;
    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        1
    );

    // Run the finished job again, as a crash between commit and acknowledgement would.
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(), lock_by = NULL",
    )
    .execute(&app.db.pool)
    .await
    .expect("reset the job");
    run_due_jobs(&app.db.pool).await;
    assert_eq!(app.db.count("apalis.jobs WHERE status = 'Done'").await, 1);

    assert_eq!(app.db.count("audit_log").await, 1);
    assert_eq!(app.db.count("customers").await, 1);
    worker.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_failure_a_retry_can_cure_is_retried_then_applied() {
    let app = TestReceiver::spawn().await;
    fail_customer_writes(&app.db.pool, 2).await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let id = deliver_customer_created(&app).await;

    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        1
    );

    let (status, attempts, last_error) = status_of(&app.db.pool, &id).await;
    assert_eq!((status.as_str(), attempts), ("applied", 3));
    assert!(last_error.is_some_and(|e| e.contains("injected failure")));
    assert_eq!(app.db.count("job_failures WHERE retryable").await, 2);
    assert_eq!(app.db.count("dead_letters").await, 0);
    assert_eq!(app.db.count("audit_log").await, 1);
    worker.stop().await.expect("clean stop");
}

#[tokio::test]
async fn exhausted_retries_dead_letter_the_job_with_its_history_and_requeue_applies_it_once() {
    let app = TestReceiver::spawn_with(|s| s.process_event_max_attempts = 3).await;
    fail_customer_writes(&app.db.pool, 1_000).await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let id = deliver_customer_created(&app).await;

    run_due_jobs(&app.db.pool).await;
    assert_eq!(app.db.count("dead_letters").await, 1);

    let letters = dead_letter::list(&app.db.pool, &Selection::default())
        .await
        .expect("list");
    let letter = &letters[0];
    assert_eq!(letter.kind, "process_event");
    assert_eq!(letter.event_id.as_deref(), Some(id.as_str()));
    assert_eq!(letter.attempts, 3);
    assert!(
        letter.error.contains("injected failure"),
        "{}",
        letter.error
    );
    let history = letter.history.as_array().expect("history");
    assert_eq!(history.len(), 3);
    assert!(
        history
            .iter()
            .all(|h| h["error"].as_str().is_some_and(|e| e.contains("injected")))
    );
    assert_eq!(status_of(&app.db.pool, &id).await.0, "dead");

    heal_customer_writes(&app.db.pool).await;
    let selection = Selection {
        event_ids: vec![id.clone()],
        ..Selection::default()
    };
    let requeued =
        dead_letter::requeue(&app.db.pool, &selection, "tester", "database fixed", false)
            .await
            .expect("requeue");
    assert_eq!(requeued.len(), 1);
    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        1
    );

    assert_eq!(app.db.count("audit_log WHERE entity = 'customer'").await, 1);
    assert_eq!(
        app.db
            .count("audit_log WHERE entity = 'dead_letter' AND action = 'requeued' AND actor = 'tester'")
            .await,
        1,
        "the requeue is audited with who did it"
    );
    let again = dead_letter::show(&app.db.pool, &letter.job_id)
        .await
        .expect("show")
        .expect("kept");
    assert!(again.requeued_at.is_some());
    assert_eq!(again.requeue_history[0]["by"], "tester");
    assert_eq!(again.requeue_history[0]["reason"], "database fixed");

    // A second requeue of work that already took effect changes nothing.
    let none = dead_letter::requeue(&app.db.pool, &selection, "tester", "again", false)
        .await
        .expect("requeue");
    assert!(none.is_empty());
    worker.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_permanent_error_goes_to_the_dead_letters_at_once() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let event = fixtures::envelope(
        "customer.updated",
        ApiShape::Dahlia,
        serde_json::json!({ "object": "customer", "email": "no-id@example.com" }),
    );
    assert_eq!(app.deliver(&event).await.status(), 200);
    assert_eq!(
        app.db
            .count("webhook_events WHERE object_id IS NULL AND customer_id IS NULL")
            .await,
        1
    );

    run_due_jobs(&app.db.pool).await;
    assert_eq!(app.db.count("dead_letters").await, 1);

    assert_eq!(app.db.count("job_failures").await, 1);
    assert_eq!(app.db.count("job_failures WHERE NOT retryable").await, 1);
    assert_eq!(app.db.count("dead_letters WHERE attempts = 1").await, 1);
    assert_eq!(
        app.db.count("webhook_events WHERE status = 'dead'").await,
        1
    );
    worker.stop().await.expect("clean stop");
}

/// The open dead letters gauge: every kind at 0 from the start, the count once one dies, and 0
/// again once it is requeued.
#[tokio::test]
async fn open_dead_letters_are_a_gauge_by_kind_from_the_start() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let metrics = || async {
        app.client
            .get(format!("{}/metrics", worker.admin_address))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text")
    };
    let gauge =
        |kind: &str, n: i64| format!(r#"billhook_worker_dead_letters_open{{kind="{kind}"}} {n}"#);
    let text = metrics().await;
    for kind in ["process_event", "notify_app", "send_email", "dunning_step"] {
        assert!(
            text.lines().any(|l| l == gauge(kind, 0)),
            "{kind} in:\n{text}"
        );
    }

    let event = fixtures::envelope(
        "customer.updated",
        ApiShape::Dahlia,
        serde_json::json!({ "object": "customer", "email": "no-id@example.com" }),
    );
    assert_eq!(app.deliver(&event).await.status(), 200);
    run_due_jobs(&app.db.pool).await;
    let text = metrics().await;
    assert!(
        text.lines().any(|l| l == gauge("process_event", 1)),
        "{text}"
    );

    let selection = Selection {
        include_requeued: false,
        ..Selection::default()
    };
    dead_letter::requeue(&app.db.pool, &selection, "test", "gauge", false)
        .await
        .expect("requeue");
    let text = metrics().await;
    assert!(
        text.lines().any(|l| l == gauge("process_event", 0)),
        "{text}"
    );
    worker.stop().await.expect("clean stop");
}

/// A signed event whose object id no index can hold (PostgreSQL: "index row size exceeds
/// btree maximum", SQLSTATE 54000): the receiver stores it all the same (without the object
/// column, an id longer than Stripe makes), and the worker's write fails forever, so it is
/// dead at once: nothing Stripe signed is refused or lost.
#[tokio::test]
async fn data_the_database_can_never_hold_goes_to_the_dead_letters_at_once() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let mut event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    // Random, so that compression cannot shrink it under the index entry limit.
    let huge_id: String = (0..20_000)
        .map(|_| ulid::Ulid::generate().to_string())
        .collect();
    event["data"]["object"]["id"] = format!("cus_{huge_id}").into();
    assert_eq!(app.deliver(&event).await.status(), 200);
    assert_eq!(
        app.db
            .count("webhook_events WHERE object_id IS NULL AND customer_id IS NULL")
            .await,
        1
    );

    run_due_jobs(&app.db.pool).await;
    assert_eq!(app.db.count("dead_letters").await, 1);

    assert_eq!(app.db.count("job_failures").await, 1);
    assert_eq!(app.db.count("job_failures WHERE NOT retryable").await, 1);
    assert_eq!(app.db.count("dead_letters WHERE attempts = 1").await, 1);
    assert_eq!(app.db.count("customers").await, 0);
    worker.stop().await.expect("clean stop");
}

#[tokio::test]
async fn an_undecodable_job_argument_is_dead_lettered_and_the_worker_keeps_going() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let push = |args: &[u8]| {
        let task = apalis::prelude::TaskBuilder::new(args.to_vec())
            .max_attempts(5)
            .build();
        let pool = app.db.pool.clone();
        async move {
            let mut conn = pool.acquire().await.expect("conn");
            apalis_postgres::queries::push_tasks(
                &mut *conn,
                billhook_core::jobs::PROCESS_EVENT_QUEUE,
                vec![task],
            )
            .await
        }
    };
    push(br#"{"v":"99","what":"from the future"}"#)
        .await
        .expect("JSON of the wrong shape is queued");
    // Bytes that are not JSON would stop apalis's fetch for the whole worker: they never get in.
    assert!(push(b"not JSON at all").await.is_err());

    run_due_jobs(&app.db.pool).await;
    assert_eq!(app.db.count("dead_letters").await, 1);
    let id = deliver_customer_created(&app).await;
    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        1
    );

    let letters = dead_letter::list(&app.db.pool, &Selection::default())
        .await
        .expect("list");
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].error.contains("cannot be decoded"),
        "{}",
        letters[0].error
    );
    assert_eq!(letters[0].attempts, 1);
    assert_eq!(status_of(&app.db.pool, &id).await.0, "applied");
    worker.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_lets_the_job_in_flight_finish() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    // Hold the lock a ProcessEvent job takes on its Stripe object (with the event's row, in
    // one statement) before the event exists, so its job blocks inside its transaction
    // whenever the worker fetches it; then wait until it has.
    let mut blocker = app.db.pool.begin().await.expect("tx");
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    let id = event["id"].as_str().expect("id").to_owned();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(event["data"]["object"]["id"].as_str().expect("object id"))
        .execute(&mut *blocker)
        .await
        .expect("lock");
    assert_eq!(app.deliver(&event).await.status(), 200);
    wait_for_count(
        &app.db.pool,
        "SELECT count(*) FROM pg_stat_activity \
          WHERE wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock%' \
            AND datname = current_database()",
        1,
        Duration::from_secs(30),
    )
    .await;

    let stopping = tokio::spawn(worker.stop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!stopping.is_finished(), "stop waits for the job in flight");
    blocker.rollback().await.expect("release");

    stopping.await.expect("join").expect("clean stop");
    assert_eq!(status_of(&app.db.pool, &id).await.0, "applied");
}

#[tokio::test]
async fn readyz_answers_503_in_time_when_the_database_does_not_answer() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let readyz = || {
        app.client
            .get(format!("{}/readyz", worker.admin_address))
            .timeout(Duration::from_secs(10))
            .send()
    };
    assert_eq!(readyz().await.expect("GET").status(), 200);
    // A query that does not return: the migration history locked by another transaction.
    let mut blocker = app.db.pool.begin().await.expect("tx");
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock");

    let response = readyz()
        .await
        .expect("/readyz answers while the database does not");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["reason"], "database timed out", "{body}");

    blocker.rollback().await.expect("release");
    assert_eq!(readyz().await.expect("GET").status(), 200);
}

#[tokio::test]
async fn the_admin_listener_reports_health_readiness_and_job_metrics() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    deliver_customer_created(&app).await;
    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        1
    );

    let get = |path: &str| {
        app.client
            .get(format!("{}{path}", worker.admin_address))
            .send()
    };
    assert_eq!(get("/healthz").await.expect("GET").status(), 200);
    assert_eq!(get("/readyz").await.expect("GET").status(), 200);
    let text = get("/metrics")
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    for line in [
        r#"billhook_worker_jobs_total{kind="process_event",outcome="ok"} 1"#,
        r#"billhook_worker_events_total{status="applied",type="customer.created"} 1"#,
        r#"billhook_worker_event_lag_seconds_count{status="applied"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(text.contains("billhook_worker_queue_depth"), "{text}");
    worker.stop().await.expect("clean stop");
}
