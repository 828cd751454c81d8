//! `TestWorker`: the worker daemon in-process against a test database, with fast polling,
//! heartbeats and retries, plus [`run_due_jobs`]: what a test calls instead of polling for the
//! rows a follow-up job writes.

use std::time::{Duration, Instant};

use billhook_worker::daemon::Daemon;
use billhook_worker::daemon::settings::RunSettings;
use billhook_worker::notify::settings::NotifySettings;
use billhook_worker::notify::sign::SigningKey;
use billhook_worker::queue::QueueSettings;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Settings for a worker that notices everything quickly: 100 ms polls, 1 s heartbeats,
/// retries after about 100 ms. Notices to the application are recorded, never sent.
pub fn settings() -> RunSettings {
    RunSettings {
        admin_listen: "127.0.0.1:0".into(),
        queue: QueueSettings {
            concurrency: 4,
            batch_size: 10,
            poll_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            missed_heartbeats: 2,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(500),
            shutdown_timeout: Duration::from_secs(10),
            job_retention: Duration::from_secs(7 * 24 * 3600),
            give_up_after: Duration::from_secs(300),
        },
        notify: NotifySettings {
            url: None,
            secret: None,
            timeout: Duration::from_secs(5),
            max_attempts: 5,
        },
        billing: Default::default(),
        // Without SMTP, emails are files: keep them out of the source tree.
        email: billhook_worker::email::settings::EmailSettings {
            dir: std::env::temp_dir().join("billhook-test-mail"),
            ..Default::default()
        },
        dunning: Default::default(),
        reconcile: Default::default(),
        alerts: Default::default(),
        summary: Default::default(),
        retention: Default::default(),
        // A console on a port of its own, like the admin listener, so that tests can run
        // many workers at once.
        console: billhook_console::ConsoleSettings {
            listen: "127.0.0.1:0".into(),
            tokens: None,
        },
    }
}

/// [`settings`] with emails sent over plain SMTP to 127.0.0.1:`port`, from
/// `Billing <billing@example.com>`, replies to `support@example.com`.
pub fn settings_with_smtp(port: u16) -> RunSettings {
    let mut settings = settings();
    settings.email.smtp_host = Some("127.0.0.1".into());
    settings.email.smtp_port = port;
    settings.email.smtp_tls = billhook_worker::email::settings::SmtpTls::None;
    settings.email.smtp_timeout = Duration::from_secs(5);
    settings.email.from = "Billing <billing@example.com>".into();
    settings.email.reply_to = Some("support@example.com".into());
    settings
}

/// [`settings`] with notices sent to `url`, signed with `secret` (`whsec_…`).
pub fn settings_with_notify(url: &str, secret: &str) -> RunSettings {
    let mut settings = settings();
    settings.notify.url = Some(
        url.parse()
            .unwrap_or_else(|e| panic!("notify URL `{url}`: {e}")),
    );
    settings.notify.secret =
        Some(SigningKey::parse(secret).unwrap_or_else(|e| panic!("notify secret: {e}")));
    settings
}

pub struct TestWorker {
    pub admin_address: String,
    /// The console this worker serves (`http://127.0.0.1:PORT`), unless its settings say `off`.
    pub console_address: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestWorker {
    pub async fn spawn(pool: &PgPool) -> Self {
        Self::spawn_with(pool, settings()).await
    }

    pub async fn spawn_with(pool: &PgPool, settings: RunSettings) -> Self {
        let daemon = Daemon::build(pool.clone(), settings)
            .await
            .unwrap_or_else(|e| panic!("worker starts: {e:#}"));
        let admin_address = format!("http://127.0.0.1:{}", daemon.admin_port());
        let console_address = daemon
            .console_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.run(async {
            let _ = rx.await;
        }));
        Self {
            admin_address,
            console_address,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Asks the worker to stop and waits until it has.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// How far ahead [`run_due_jobs`] looks: a retry under [`settings`] comes due within
/// `retry_max` (500 ms) of the failure, so one second includes every retry a failure schedules.
pub const RETRY_HORIZON: Duration = Duration::from_secs(1);

/// How long [`run_due_jobs`] waits before it gives up.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Returns once every job due now has run to completion, with the follow-up jobs they pushed
/// and the retries they scheduled (see [`RETRY_HORIZON`]); jobs scheduled later stay queued. A worker
/// must be running on the same database: a [`TestWorker`], or a worker process. Panics after
/// [`RUN_LIMIT`] with how many jobs are still outstanding.
pub async fn run_due_jobs(pool: &PgPool) {
    run_jobs_due_within(pool, RETRY_HORIZON, RUN_LIMIT).await;
}

/// [`run_due_jobs`] with a horizon and a limit of the caller's. The horizon moves with the
/// clock: a chain of jobs, each scheduled less than `within` after the one before, runs to its
/// end (a schedule of seconds). `within` must cover the retries too.
pub async fn run_jobs_due_within(pool: &PgPool, within: Duration, limit: Duration) {
    billhook_worker::queue::drain::until_idle(pool, within, limit)
        .await
        .unwrap_or_else(|e| {
            panic!("jobs due within {within:?} did not all run (is a worker running?): {e:#}")
        });
}

/// Polls `sql` (a query returning one bigint) until it returns `expected`, or panics after
/// `limit` with the last value seen. For a state in the middle of the work (a job in flight, a
/// retry loop, one step of a schedule) or outside the queue; for work done, [`run_due_jobs`].
pub async fn wait_for_count(pool: &PgPool, sql: &str, expected: i64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let value: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        if value == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for `{sql}` to be {expected}; it is {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
