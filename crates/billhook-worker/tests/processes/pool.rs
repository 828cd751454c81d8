//! A burst of events larger than the worker's pool: events wait inside the process for a
//! connection of their own instead of failing on the pool's timeout (`queue::connections`).
//! Before, a burst on a busy machine retried events although nothing was wrong, and each
//! retry counted toward the failure alert.

use std::time::{Duration, Instant};

use billhook_testkit::TestReceiver;
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::worker::{RETRY_HORIZON, run_jobs_due_within};

use super::worker::{Running, worker};

const EVENTS: usize = 24;
/// The worker's pool here: five job kinds hold one LISTEN connection each and three are kept
/// for polls and scheduled work, which leaves four for applying events.
const POOL: &str = "12";
const EVENT_SLOTS: i64 = 4;

const WAITING_ON_THE_LOCK: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND wait_event_type = 'Lock' \
       AND query LIKE '%FROM webhook_events%FOR UPDATE%'";

#[tokio::test]
async fn a_burst_held_up_by_a_lock_waits_for_connections_instead_of_failing() {
    let app = TestReceiver::spawn().await;
    for n in 0..EVENTS {
        let mut event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
        event["data"]["object"]["id"] = format!("cus_burst{n:03}").into();
        assert_eq!(app.deliver(&event).await.status(), 200);
    }
    // Every event row held: a job that starts blocks inside its transaction, its connection
    // taken, for as long as the test wants.
    let mut blocker = app.db.pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM webhook_events FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let _worker = Running::spawn(
        worker(&app.db.url)
            .arg("run")
            .env("BILLHOOK_DATABASE_MAX_CONNECTIONS", POOL)
            .env("BILLHOOK_DATABASE_TIMEOUT", "300ms")
            .env("BILLHOOK_WORKER_CONCURRENCY", "16"),
    );
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(WAITING_ON_THE_LOCK)
            .fetch_one(&app.db.pool)
            .await
            .expect("waiting")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while waiting().await < EVENT_SLOTS {
        assert!(
            Instant::now() < deadline,
            "no event reached the lock in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Long enough for several pool timeouts: a job waiting on the pool would have failed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failures: Vec<String> = sqlx::query_scalar("SELECT error FROM job_failures")
        .fetch_all(&app.db.pool)
        .await
        .expect("failures");
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        waiting().await,
        EVENT_SLOTS,
        "events holding a connection at once"
    );

    blocker.rollback().await.expect("release");
    run_jobs_due_within(&app.db.pool, RETRY_HORIZON, Duration::from_secs(60)).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        EVENTS as i64
    );
    assert_eq!(app.db.count("job_failures").await, 0);
}
