//! The generic job machinery with a job kind of the test's own: a panic is an ordinary
//! failure (retried, then dead-lettered), never a stuck job or a dead worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apalis::prelude::{Monitor, TaskBuilder};
use billhook_testkit::TestDatabase;
use billhook_testkit::worker::{run_due_jobs, settings};
use billhook_worker::queue::workers::register;
use billhook_worker::queue::{Backoff, Job, JobError, JobKind, QueueMetrics, Runner};
use sqlx::PgPool;

/// Panics on the runs whose number (1-based) is in `panic_on`; succeeds otherwise.
struct Flaky {
    runs: AtomicUsize,
    panic_on: Vec<usize>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FlakyArgs {
    #[allow(dead_code)]
    n: u32,
}

impl Job for FlakyArgs {
    const KIND: &'static str = "flaky";
    const QUEUE: &'static str = "billhook.test.flaky";
}

impl JobKind for Flaky {
    type Args = FlakyArgs;

    fn event_id(_: &serde_json::Value) -> Option<String> {
        None
    }

    async fn run(&self, _: FlakyArgs) -> Result<(), JobError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if self.panic_on.contains(&run) {
            panic!("flaky run {run} panicked");
        }
        Ok(())
    }

    async fn record_failure(
        &self,
        _: &mut sqlx::PgConnection,
        _: &serde_json::Value,
        _: u32,
        _: &str,
        _: bool,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

async fn push(pool: &PgPool, n: u32, max_attempts: usize) {
    let mut conn = pool.acquire().await.expect("conn");
    let task = TaskBuilder::new(serde_json::to_vec(&serde_json::json!({ "n": n })).expect("json"))
        .max_attempts(max_attempts)
        .build();
    apalis_postgres::queries::push_tasks(&mut *conn, FlakyArgs::QUEUE, vec![task])
        .await
        .expect("push");
}

async fn run_flaky(db: &TestDatabase, panic_on: Vec<usize>) -> tokio::sync::oneshot::Sender<()> {
    let runner = Arc::new(Runner {
        kind: Flaky {
            runs: AtomicUsize::new(0),
            panic_on,
        },
        pool: db.pool.clone(),
        metrics: QueueMetrics::new(),
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
    });
    let monitor = register(Monitor::new(), &db.pool, &settings().queue, "test", runner);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(monitor.run_with_signal(async {
        let _ = rx.await;
        Ok(())
    }));
    tx
}

#[tokio::test]
async fn a_panic_is_retried_like_any_failure() {
    let db = TestDatabase::new().await;
    let _stop = run_flaky(&db, vec![1]).await;
    push(&db.pool, 1, 5).await;

    run_due_jobs(&db.pool).await;
    assert_eq!(db.count("apalis.jobs WHERE status = 'Done'").await, 1);

    assert_eq!(
        db.count("job_failures WHERE retryable AND error LIKE '%panicked%'")
            .await,
        1
    );
    assert_eq!(db.count("dead_letters").await, 0);
}

#[tokio::test]
async fn a_job_that_always_panics_is_dead_lettered_and_the_worker_keeps_running() {
    let db = TestDatabase::new().await;
    let _stop = run_flaky(&db, vec![1, 2]).await;
    push(&db.pool, 1, 2).await;

    run_due_jobs(&db.pool).await;
    assert_eq!(
        db.count("dead_letters WHERE kind = 'flaky' AND attempts = 2")
            .await,
        1
    );
    push(&db.pool, 2, 2).await;
    run_due_jobs(&db.pool).await;
    assert_eq!(db.count("apalis.jobs WHERE status = 'Done'").await, 1);

    let history: serde_json::Value = sqlx::query_scalar("SELECT history FROM dead_letters")
        .fetch_one(&db.pool)
        .await
        .expect("history");
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    assert_eq!(db.count("apalis.jobs WHERE status = 'Running'").await, 0);
}
