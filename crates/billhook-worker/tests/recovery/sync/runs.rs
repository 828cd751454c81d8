//! A sync run as a whole: paging through long lists, one run at a time, resuming after an
//! interruption, `--created-since`, Stripe refusing the key or asking to slow down, and the
//! command line.

use std::process::Output;
use std::time::{Duration, Instant};

use billhook_testkit::TestDatabase;
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::objects::{Builder, Cast, DAY};
use billhook_testkit::stripe_api::StripeStandIn;
use billhook_testkit::worker::wait_for_count;
use billhook_worker::stripe::list::ListError;
use billhook_worker::sync::{self, CreatedSince, ObjectType, Progress, Request, SyncError};
use serde_json::json;
use tokio::process::Command;

use super::{KEY, api, queries, run_sync};

/// `count` customers `cus_s0000`…, one a minute older than the next, the newest an hour ago.
fn add_customers(stripe: &StripeStandIn, count: usize) {
    let newest = fixtures::unix_now() - 3600;
    for n in 0..count {
        stripe.add_object(
            "customers",
            json!({ "id": format!("cus_s{n:04}"), "object": "customer", "livemode": false,
                    "email": format!("c{n}@example.com"), "created": newest - 60 * (count - n) as i64 }),
        );
    }
}

/// `count` paid invoices of one customer, in the 2025-03-31 shape, each a minute apart.
fn add_invoices(stripe: &StripeStandIn, count: usize) {
    let cast = Cast::fresh();
    let b = Builder {
        shape: ApiShape::Dahlia,
        cast: &cast,
        t0: fixtures::unix_now() - 10 * DAY,
    };
    for n in 0..count {
        let mut invoice =
            b.invoice("invoice.paid", &format!("in_s{n:04}"), "paid", 1, 0)["data"]["object"]
                .clone();
        invoice["created"] = (b.t0 + 60 * n as i64).into();
        stripe.add_object("invoices", invoice);
    }
}

/// The `starting_after` of each request to `path`, in order (`None` for the first page).
fn cursors(stripe: &StripeStandIn, path: &str) -> Vec<Option<String>> {
    queries(stripe, path)
        .into_iter()
        .map(|q| {
            q.into_iter()
                .find(|(k, _)| k == "starting_after")
                .map(|(_, v)| v)
        })
        .collect()
}

async fn run_outcome(db: &TestDatabase) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as("SELECT id, outcome, error FROM sync_runs ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("sync_runs")
}

#[tokio::test]
async fn a_sync_pages_through_more_than_a_hundred_objects_and_writes_each_once() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    add_customers(&stripe, 250);

    let summary = run_sync(&db, &stripe, &[ObjectType::Customers])
        .await
        .expect("the sync succeeds");

    let figures = summary.of(ObjectType::Customers).expect("customers");
    assert_eq!(
        (figures.fetched, figures.written, figures.kept),
        (250, 250, 0)
    );
    assert_eq!(db.count("customers").await, 250);
    assert_eq!(
        db.count("(SELECT DISTINCT entity_id FROM audit_log WHERE action = 'synced') ids")
            .await,
        250
    );
    // Newest first: the first page ends on the 101st newest customer, cus_s0150.
    assert_eq!(
        cursors(&stripe, "/v1/customers"),
        [
            None,
            Some("cus_s0150".to_owned()),
            Some("cus_s0050".to_owned())
        ]
    );
    let progress: (Option<String>, i64, bool) = sqlx::query_as(
        "SELECT cursor, fetched, done FROM sync_progress WHERE object_type = 'customers'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("progress");
    assert_eq!(progress, (Some("cus_s0000".to_owned()), 250, true));
}

#[tokio::test]
async fn an_interrupted_sync_resumes_after_its_last_committed_page() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    add_customers(&stripe, 30);
    add_invoices(&stripe, 250);
    let types = [ObjectType::Customers, ObjectType::Invoices];
    // The second page of invoices never comes.
    stripe.stall_after("/v1/invoices", 1);
    let interrupted = tokio::spawn({
        let (pool, api) = (db.pool.clone(), api(&stripe));
        async move {
            let request = Request::new(types.to_vec(), None, false);
            sync::sync(&pool, &api, &request, &Progress::log()).await
        }
    });
    let invoices_fetched = "SELECT coalesce(sum(fetched), 0)::bigint FROM sync_progress WHERE object_type = 'invoices'";
    wait_for_count(&db.pool, invoices_fetched, 100, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !interrupted.is_finished(),
        "the sync waits for the stalled page"
    );

    let busy = run_sync(&db, &stripe, &types).await;
    assert!(matches!(busy, Err(SyncError::Busy)), "{busy:?}");
    let message = busy.expect_err("busy").to_string();
    assert!(message.contains("another sync is running"), "{message}");

    interrupted.abort();
    let _ = interrupted.await;
    // The aborted run's connection closes and PostgreSQL lets its lock go.
    wait_for_count(
        &db.pool,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        0,
        Duration::from_secs(10),
    )
    .await;
    stripe.release();
    let runs = run_outcome(&db).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].1, "running",
        "the process died: nothing recorded its end"
    );
    assert_eq!(db.count("invoices").await, 100);

    let summary = run_sync(&db, &stripe, &types)
        .await
        .expect("the resumed sync succeeds");

    assert!(summary.resumed);
    assert_eq!(summary.run, runs[0].0, "the same run, resumed");
    let customers = summary.of(ObjectType::Customers).expect("customers");
    assert!(
        customers.done_before,
        "customers were done: not listed again"
    );
    assert_eq!(stripe.count("GET", "/v1/customers"), 1);
    let invoices = summary.of(ObjectType::Invoices).expect("invoices");
    assert_eq!((invoices.fetched, invoices.written), (250, 250));
    assert_eq!(db.count("invoices").await, 250);
    assert_eq!(
        db.count("audit_log WHERE action = 'synced' AND entity = 'invoice'")
            .await,
        250,
        "every invoice written once"
    );
    // Requests: the first page, the stalled one, then the resumed run after the first page's
    // last invoice (the 100th newest, in_s0150) and on to the end.
    assert_eq!(
        cursors(&stripe, "/v1/invoices"),
        [
            None,
            Some("in_s0150".to_owned()),
            Some("in_s0150".to_owned()),
            Some("in_s0050".to_owned())
        ]
    );
    let runs = run_outcome(&db).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, "succeeded");
}

#[tokio::test]
async fn created_since_lists_only_newer_objects_and_a_fresh_run_starts_over() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    add_customers(&stripe, 5);
    stripe.add_object(
        "customers",
        json!({ "id": "cus_old", "object": "customer", "email": "old@example.com",
                "created": fixtures::unix_now() - 90 * DAY }),
    );
    let request = Request::new(
        vec![ObjectType::Customers],
        Some(CreatedSince::Ago(Duration::from_secs(30 * 86_400))),
        false,
    );

    let summary = sync::sync(&db.pool, &api(&stripe), &request, &Progress::log())
        .await
        .expect("the sync succeeds");

    assert_eq!(
        summary.of(ObjectType::Customers).map(|t| t.written),
        Some(5)
    );
    assert_eq!(db.count("customers WHERE id = 'cus_old'").await, 0);
    let query = &queries(&stripe, "/v1/customers")[0];
    let gte: i64 = query
        .iter()
        .find(|(k, _)| k == "created[gte]")
        .map(|(_, v)| v.parse().expect("an integer"))
        .expect("created[gte] sent");
    assert!((fixtures::unix_now() - 30 * DAY - gte).abs() < 60, "{gte}");

    // The same request again starts a new run: the last one succeeded.
    let again = sync::sync(&db.pool, &api(&stripe), &request, &Progress::log())
        .await
        .expect("the second sync succeeds");
    assert_ne!(again.run, summary.run);
    assert!(!again.resumed);
}

#[tokio::test]
async fn a_refused_key_fails_the_run_with_a_clear_message_and_writes_nothing() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    add_customers(&stripe, 3);
    stripe.fail_next_path("/v1/customers", 401, 1, None);

    let error = run_sync(&db, &stripe, &[ObjectType::Customers])
        .await
        .expect_err("the key is refused");

    let SyncError::Stripe {
        error: ListError::Key(message),
        ..
    } = &error
    else {
        panic!("not the key's error: {error:?}");
    };
    assert!(message.contains("BILLHOOK_STRIPE_API_KEY"), "{message}");
    assert!(!error.to_string().contains(KEY), "{error}");
    let runs = run_outcome(&db).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, "failed");
    assert_eq!(runs[0].2.as_deref(), Some(message.as_str()));
    assert_eq!(db.count("customers").await, 0);
    assert_eq!(db.count("audit_log").await, 0);
    assert_eq!(stripe.count("GET", "/v1/customers"), 1, "no retry can help");

    // Once the key is fixed, the failed run is resumed.
    let summary = run_sync(&db, &stripe, &[ObjectType::Customers])
        .await
        .expect("the sync succeeds");
    assert_eq!(summary.run, runs[0].0);
    assert_eq!(db.count("customers").await, 3);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_the_sync_goes_on() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    add_customers(&stripe, 3);
    stripe.fail_next_path("/v1/customers", 429, 1, Some(1));
    let started = Instant::now();

    let summary = run_sync(&db, &stripe, &[ObjectType::Customers])
        .await
        .expect("the sync succeeds");

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}, not the Retry-After",
        started.elapsed()
    );
    assert_eq!(stripe.count("GET", "/v1/customers"), 2);
    assert_eq!(
        summary.of(ObjectType::Customers).map(|t| t.written),
        Some(3)
    );
    assert_eq!(db.count("customers").await, 3);
    assert_eq!(run_outcome(&db).await[0].1, "succeeded");
}

/// Runs the worker's command line; awaited, so the stand-in on this test's runtime answers it.
async fn worker(db: &TestDatabase, stripe: Option<&StripeStandIn>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billhook-worker"));
    command
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("BILLHOOK_LOG_FORMAT", "text")
        .args(args);
    if let Some(stripe) = stripe {
        command
            .env("BILLHOOK_STRIPE_API_KEY", KEY)
            .env("BILLHOOK_STRIPE_API_BASE", &stripe.base);
    }
    command.output().await.expect("run billhook-worker")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_sync_command_prints_a_summary_and_fails_clearly_without_a_usable_key() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    add_customers(&stripe, 4);

    let no_key = worker(&db, None, &["sync"]).await;
    assert!(!no_key.status.success());
    assert!(
        text(&no_key.stderr).contains("BILLHOOK_STRIPE_API_KEY"),
        "{}",
        text(&no_key.stderr)
    );

    stripe.fail_next_path("/v1/customers", 401, 1, None);
    let refused = worker(&db, Some(&stripe), &["sync", "customers"]).await;
    assert!(!refused.status.success());
    let output = text(&refused.stderr) + &text(&refused.stdout);
    assert!(output.contains("BILLHOOK_STRIPE_API_KEY"), "{output}");
    assert!(!output.contains(KEY), "the key is never shown: {output}");
    assert_eq!(db.count("customers").await, 0);
    assert_eq!(db.count("sync_runs WHERE outcome = 'failed'").await, 1);

    let synced = worker(&db, Some(&stripe), &["sync", "customers", "--fresh"]).await;
    assert!(synced.status.success(), "{}", text(&synced.stderr));
    let stdout = text(&synced.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("customers "))
        .unwrap_or_else(|| panic!("a line for customers: {stdout}"));
    let figures: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(figures[..4], ["customers", "4", "4", "0"], "{stdout}");
    assert_eq!(db.count("customers").await, 4);
    assert_eq!(db.count("sync_runs").await, 2, "--fresh: a new run");
}
