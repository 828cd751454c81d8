//! The real `billhook-worker` binary as operators run it: it refuses an unmigrated database,
//! survives a worker killed mid-job, shares a queue with another process, and its requeue
//! command replays dead letters.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::worker::{RETRY_HORIZON, run_due_jobs, run_jobs_due_within, wait_for_count};
use billhook_testkit::{TestDatabase, TestReceiver};

pub(crate) fn worker(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billhook-worker"));
    command
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env(
            "BILLHOOK_EMAIL_DIR",
            std::env::temp_dir().join("billhook-test-mail"),
        )
        .env("BILLHOOK_LOG_FORMAT", "text")
        // Tests run side by side on one server (max_connections 100): five processes of
        // sixteen connections each in two tests at once left none for the next connection.
        .env("BILLHOOK_DATABASE_MAX_CONNECTIONS", "10")
        .env("BILLHOOK_DATABASE_MIN_CONNECTIONS", "1")
        .env("BILLHOOK_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("BILLHOOK_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("BILLHOOK_WORKER_POLL_INTERVAL", "100ms")
        .env("BILLHOOK_WORKER_HEARTBEAT_INTERVAL", "1s")
        .env("BILLHOOK_WORKER_MISSED_HEARTBEATS", "2")
        .env("BILLHOOK_RETRY_BASE", "100ms")
        .env("BILLHOOK_RETRY_MAX", "500ms");
    command
}

pub(crate) struct Running(Child);

impl Running {
    pub(crate) fn start(database_url: &str) -> Self {
        let child = worker(database_url)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start billhook-worker run");
        Self(child)
    }

    /// Starts `command` (output discarded).
    pub(crate) fn spawn(command: &mut Command) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start billhook-worker");
        Self(child)
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub(crate) fn wait_for_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "billhook-worker did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn output(command: &mut Command) -> Output {
    command.output().expect("run billhook-worker")
}

fn customer_event(n: usize) -> serde_json::Value {
    let mut event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    event["data"]["object"]["id"] = format!("cus_bench{n:05}").into();
    event
}

#[tokio::test]
async fn run_refuses_an_unmigrated_database_with_the_command_to_run() {
    let db = TestDatabase::unmigrated().await;
    let out = output(worker(&db.url).arg("run"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("billhook-worker migrate"), "{stderr}");
}

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_it_to_another_which_applies_it_once() {
    let app = TestReceiver::spawn().await;
    let event = customer_event(1);
    let id = event["id"].as_str().expect("id").to_owned();
    assert_eq!(app.deliver(&event).await.status(), 200);
    // Hold the event row: the first worker's job blocks inside its transaction.
    let mut blocker = app.db.pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM webhook_events WHERE id = $1 FOR UPDATE")
        .bind(&id)
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let mut first = Running::start(&app.db.url);
    // A poll, not a drain: the job is to be in flight, held by the lock, when the kill comes.
    wait_for_count(
        &app.db.pool,
        "SELECT count(*) FROM apalis.jobs WHERE status = 'Running'",
        1,
        Duration::from_secs(30),
    )
    .await;

    first.signal("-KILL");
    first.wait_for_exit(Duration::from_secs(10));
    let _second = Running::start(&app.db.url);
    blocker.rollback().await.expect("release");

    run_jobs_due_within(&app.db.pool, RETRY_HORIZON, Duration::from_secs(60)).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        1
    );
    assert_eq!(app.db.count("audit_log").await, 1);
    assert_eq!(app.db.count("customers").await, 1);
}

#[tokio::test]
async fn two_worker_processes_apply_two_thousand_events_each_exactly_once() {
    const EVENTS: usize = 2_000;
    let app = TestReceiver::spawn().await;
    for n in 0..EVENTS {
        assert_eq!(app.deliver(&customer_event(n)).await.status(), 200);
    }
    let _a = Running::start(&app.db.url);
    let _b = Running::start(&app.db.url);

    run_jobs_due_within(&app.db.pool, RETRY_HORIZON, Duration::from_secs(180)).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        EVENTS as i64
    );

    assert_eq!(app.db.count("audit_log").await, EVENTS as i64);
    assert_eq!(
        app.db
            .count("(SELECT event_id FROM audit_log GROUP BY event_id HAVING count(*) > 1) twice")
            .await,
        0
    );
    assert_eq!(app.db.count("customers").await, EVENTS as i64);
    assert_eq!(app.db.count("job_failures").await, 0);
    assert_eq!(
        app.db
            .count("(SELECT DISTINCT lock_by FROM apalis.jobs) workers")
            .await,
        2
    );
}

#[tokio::test]
async fn sigterm_stops_the_worker_cleanly() {
    let db = TestDatabase::new().await;
    let mut running = Running::start(&db.url);
    // A poll: this waits for the process to start, not for jobs.
    wait_for_count(
        &db.pool,
        "SELECT least(count(*), 1) FROM apalis.workers", // one row per job kind once running
        1,
        Duration::from_secs(30),
    )
    .await;
    running.signal("-TERM");
    assert_eq!(
        running.wait_for_exit(Duration::from_secs(20)).code(),
        Some(0)
    );
}

#[tokio::test]
async fn the_requeue_command_replays_dead_letters_and_records_who_and_why() {
    let app = TestReceiver::spawn_with(|s| s.process_event_max_attempts = 2).await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(&app.db.pool)
    .await
    .expect("trigger");
    let event = customer_event(7);
    let id = event["id"].as_str().expect("id").to_owned();
    assert_eq!(app.deliver(&event).await.status(), 200);
    let _worker = Running::start(&app.db.url);
    run_due_jobs(&app.db.pool).await;
    assert_eq!(app.db.count("dead_letters").await, 1);

    let listed = output(worker(&app.db.url).args(["dead-letters", "list"]));
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains(&id) && listed.contains("1 dead letter(s)"),
        "{listed}"
    );

    let refused = output(worker(&app.db.url).args(["requeue", "--event", &id]));
    assert!(!refused.status.success(), "--reason is required");

    let dry =
        output(worker(&app.db.url).args(["requeue", "--all", "--dry-run", "--reason", "look"]));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would requeue 1 job(s)"));
    assert_eq!(
        app.db.count("dead_letters WHERE requeued_at IS NULL").await,
        1
    );

    sqlx::raw_sql("DROP TRIGGER refuse ON customers")
        .execute(&app.db.pool)
        .await
        .expect("heal");
    let requeued = output(worker(&app.db.url).args([
        "requeue", "--event", &id, "--reason", "fixed", "--by", "ana",
    ]));
    assert!(
        requeued.status.success(),
        "{}",
        String::from_utf8_lossy(&requeued.stderr)
    );
    assert!(String::from_utf8_lossy(&requeued.stdout).contains("requeued 1 job(s)"));

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
            .count("audit_log WHERE action = 'requeued' AND actor = 'ana' AND detail->>'reason' = 'fixed'")
            .await,
        1
    );
    assert_eq!(
        app.db
            .count(
                "dead_letters WHERE requeue_history @> '[{\"by\": \"ana\", \"reason\": \"fixed\"}]'"
            )
            .await,
        1
    );
    // The list of every dead letter says which were requeued, when and by whom.
    let all = output(worker(&app.db.url).args(["dead-letters", "list", "--all"]));
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    let line = all
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(line.contains(" by ana"), "{all}");
    let open = output(worker(&app.db.url).args(["dead-letters", "list"]));
    assert!(String::from_utf8_lossy(&open.stdout).contains("0 dead letter(s)"));
}

#[tokio::test]
async fn a_database_restart_during_start_up_is_waited_out_not_an_exit() {
    let db = TestDatabase::new().await;
    // Start-up writes the billing settings: hold that row, so the worker's start-up waits
    // there, then end its connection as a PostgreSQL restart or failover does.
    let mut blocker = db.pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM billing_settings FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let mut running = Running::start(&db.url);
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND query LIKE 'UPDATE billing_settings%'";
    wait_for_count(&db.pool, waiting, 1, Duration::from_secs(30)).await;
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'UPDATE billing_settings%'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("terminate");
    assert_eq!(terminated, [true]);
    blocker.rollback().await.expect("release");

    // Up after all: every job kind's worker registered, and the process still running.
    wait_for_count(
        &db.pool,
        "SELECT count(DISTINCT worker_type) FROM apalis.workers",
        5,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        running.0.try_wait().expect("try_wait").is_none(),
        "billhook-worker exited"
    );
}
