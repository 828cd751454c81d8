//! Reconciliation by the real binary: a `reconcile` process killed half-way and run again, and
//! two `run` processes reconciling on a schedule side by side.

use std::process::Command;
use std::time::{Duration, Instant};

use billhook_testkit::TestDatabase;
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::stripe_api::StripeStandIn;
use billhook_testkit::worker::wait_for_count;
use serde_json::Value;

use crate::worker::{Running, output, worker};

fn event(n: usize, minutes_ago: i64) -> Value {
    let mut event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    event["data"]["object"]["id"] = format!("cus_p{n:05}").into();
    event["created"] = (fixtures::unix_now() - minutes_ago * 60).into();
    event
}

fn with_stripe(mut command: Command, stripe: &StripeStandIn) -> Command {
    command
        .env("BILLHOOK_STRIPE_API_KEY", "sk_test_processes")
        .env("BILLHOOK_STRIPE_API_BASE", &stripe.base);
    command
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scalar(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_process_killed_half_way_loses_nothing_when_run_again() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    // Windows of an hour from four hours ago: the first is empty, the next three hold 100 each.
    for (n, minutes_ago) in [150, 90, 30]
        .iter()
        .flat_map(|m| std::iter::repeat_n(*m, 100))
        .enumerate()
    {
        stripe.add_event(event(n, minutes_ago));
    }
    stripe.stall_after("/v1/events", 2);
    let first =
        Running::spawn(with_stripe(worker(&db.url), &stripe).args(["reconcile", "--since", "4h"]));
    wait_until(
        "the third window's request",
        Duration::from_secs(60),
        || stripe.count("GET", "/v1/events") >= 3,
    )
    .await;
    first.signal("-KILL");
    drop(first);
    stripe.release();
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM webhook_events").await,
        100
    );

    let again = output(with_stripe(worker(&db.url), &stripe).arg("reconcile"));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(stdout.contains("200 recovered"), "{stdout}");

    assert_eq!(
        scalar(&db, "SELECT count(*) FROM webhook_events").await,
        300
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM apalis.jobs WHERE job_type = 'billhook.process_event'"
        )
        .await,
        300,
        "one job per event"
    );
    let status = output(worker(&db.url).args(["reconcile", "--status"]));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("interrupted"), "{status}");
    assert!(status.contains("succeeded"), "{status}");
    assert!(status.contains("watermark: "), "{status}");
    stripe.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_reconcile_on_a_schedule_one_run_at_a_time() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    for n in 0..150 {
        stripe.add_event(event(n, 10));
    }
    // The first stored event is where the first run starts.
    billhook_testkit::billing::store(&db.pool, &event(999, 11)).await;
    let start = || {
        let mut command = with_stripe(worker(&db.url), &stripe);
        command.env("BILLHOOK_RECONCILE_INTERVAL", "1s").arg("run");
        Running::spawn(&mut command)
    };
    let (a, b) = (start(), start());

    wait_for_count(
        &db.pool,
        "SELECT count(*) FROM webhook_events",
        151,
        Duration::from_secs(60),
    )
    .await;
    wait_for_count(
        &db.pool,
        "SELECT least(count(*), 4) FROM reconcile_runs WHERE outcome = 'succeeded'",
        4,
        Duration::from_secs(60),
    )
    .await;
    wait_for_count(
        &db.pool,
        "SELECT count(*) FROM webhook_events WHERE status = 'applied'",
        151,
        Duration::from_secs(60),
    )
    .await;
    drop((a, b));

    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM webhook_events WHERE origin = 'events_api'"
        )
        .await,
        150
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM audit_log WHERE entity = 'customer'"
        )
        .await,
        151,
        "every event applied exactly once"
    );
    let overlapping = scalar(
        &db,
        "SELECT count(*) FROM reconcile_runs a JOIN reconcile_runs b ON a.id < b.id \
          WHERE tstzrange(a.started_at, coalesce(a.finished_at, 'infinity')) \
             && tstzrange(b.started_at, coalesce(b.finished_at, 'infinity'))",
    )
    .await;
    assert_eq!(overlapping, 0, "runs never overlap");
    assert_eq!(
        scalar(&db, "SELECT sum(events_recovered) FROM reconcile_runs").await,
        150,
        "each event recovered by one run"
    );
    stripe.stop().await;
}
