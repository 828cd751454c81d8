//! The job workers of one process: one apalis worker per job kind, each under a monitor of its
//! own on a task of its own, woken by LISTEN/NOTIFY and polling on an interval too, with the
//! retention sweep beside them.
//!
//! Lifecycle: [`Workers::run`] serves until `shutdown` completes → stop fetching, let in-flight
//! jobs finish within the shutdown timeout → return. Jobs fetched but not started go back to
//! the queue; a job cut off by the deadline returns through the heartbeat on another worker.
//! A worker that keeps failing for longer than `give_up_after` ends the run with an error.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apalis::layers::WorkerBuilderExt as _;
use apalis::layers::tracing::TraceLayer;
use apalis::prelude::{BackendExt as _, Monitor, MonitorError, WorkerBuilder};
use apalis_postgres::{Config, PostgresStorage};
use billhook_core::jobs::Job as _;
use sqlx::PgPool;

use super::metrics::QueueMetrics;
use super::restart::RestartPolicy;
use super::runner::{Backoff, JobKind, Runner, handle};
use super::settings::QueueSettings;
use super::task_span::TaskSpan;

/// How long finished jobs stay before the retention sweep deletes them is a setting; how often
/// the sweep looks is this.
const RETENTION_EVERY: Duration = Duration::from_secs(600);

/// The job kinds a process runs, each added with [`Workers::add`], then run together.
pub struct Workers {
    pool: PgPool,
    settings: QueueSettings,
    process: String,
    metrics: QueueMetrics,
    restarts: Arc<RestartPolicy>,
    monitors: Vec<Monitor>,
}

/// How [`Workers::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `shutdown` completed and in-flight jobs were given their time.
    Stopped,
    /// A worker kept failing for longer than `give_up_after`; the others were stopped.
    GaveUp,
}

impl Workers {
    /// `process` names this process's workers (with the kind and a restart count): unique per
    /// process start, so that a restarted process never inherits its predecessor's heartbeat.
    pub fn new(
        pool: PgPool,
        settings: QueueSettings,
        process: String,
        metrics: QueueMetrics,
    ) -> Self {
        let restarts = Arc::new(RestartPolicy::new(settings.give_up_after));
        Self {
            pool,
            settings,
            process,
            metrics,
            restarts,
            monitors: Vec::new(),
        }
    }

    /// Adds the worker of one job kind, under a monitor of its own.
    ///
    /// One monitor per kind, each on a task of its own: apalis polls all the workers of a
    /// monitor from one task, and the restart policy's pause blocks that task. With one
    /// monitor, a kind restarting after a database outage froze every other kind's in-flight
    /// jobs, their deadlines and their heartbeats (so other workers took their jobs over), and
    /// the pauses of four kinds together left almost no time to run at all.
    pub fn add<K: JobKind>(&mut self, kind: K) {
        let runner = Arc::new(Runner {
            kind,
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            backoff: Backoff {
                base: self.settings.retry_base,
                max: self.settings.retry_max,
            },
        });
        let restarts = Arc::clone(&self.restarts);
        let monitor = register(
            Monitor::new(),
            &self.pool,
            &self.settings,
            &self.process,
            runner,
        )
        .should_restart(move |worker, error| {
            // A fresh name per restart (see `register`), so jobs the failed instance held
            // come back through the heartbeat instead of staying Running.
            tracing::error!(worker = %worker.name(), restarts = worker.restarts(), error = %error,
                    "worker stopped with an error; restarting it");
            restarts.should_restart(worker.name())
        })
        .shutdown_timeout(self.settings.shutdown_timeout);
        self.monitors.push(monitor);
    }

    /// The job kinds added so far.
    pub fn kinds(&self) -> usize {
        self.monitors.len()
    }

    /// Runs every added kind and the retention sweep until `shutdown` completes or a worker
    /// gives up.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<Ended> {
        let retention = tokio::spawn(super::retention::run(
            self.pool.clone(),
            self.settings.job_retention,
            RETENTION_EVERY,
        ));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut running = tokio::task::JoinSet::new();
        for monitor in self.monitors {
            let mut stop = stop_rx.clone();
            running.spawn(monitor.run_with_signal(async move {
                let _ = stop.wait_for(|stop| *stop).await;
                Ok(())
            }));
        }
        tokio::pin!(shutdown);
        let mut result = Ok(());
        let ended = tokio::select! {
            () = &mut shutdown => Ended::Stopped,
            // A monitor ends early only when its worker gave up: stop the others too.
            Some(ended) = running.join_next() => {
                result = flatten(ended);
                Ended::GaveUp
            }
        };
        if ended == Ended::Stopped {
            tracing::info!("finishing in-flight jobs");
        }
        let _ = stop_tx.send(true);
        while let Some(ended) = running.join_next().await {
            result = result.and(flatten(ended));
        }
        retention.abort();
        result.context("worker failed")?;
        Ok(ended)
    }
}

/// A monitor's end as one result: its own error, or its task's panic.
fn flatten(ended: Result<Result<(), MonitorError>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match ended {
        Ok(result) => result.context("worker failed"),
        Err(e) => Err(anyhow::Error::new(e).context("a worker task panicked")),
    }
}

/// Adds the apalis worker for one job kind to `monitor`, named `{process}-{kind}-{restarts}`.
pub fn register<K: JobKind>(
    monitor: Monitor,
    pool: &PgPool,
    settings: &QueueSettings,
    process: &str,
    runner: Arc<Runner<K>>,
) -> Monitor {
    let pool = pool.clone();
    let config = Config::default()
        .queue(K::Args::QUEUE)
        .batch_size(settings.batch_size as usize)
        .heartbeat_interval(settings.heartbeat_interval)
        .missed_heartbeats(settings.missed_heartbeats as usize);
    let poll = settings.poll_interval;
    let concurrency = settings.concurrency as usize;
    let name = format!("{process}-{}", K::Args::KIND);
    monitor.register(move |restarts| {
        let backend = PostgresStorage::<serde_json::Value>::new(&pool)
            .with_config(config.clone())
            .with_pubsub()
            .poll_with_interval(poll);
        WorkerBuilder::new(format!("{name}-{restarts}"))
            .backend(backend)
            .concurrency(concurrency)
            // No failure line of apalis's own: the runner logs each failure once (a retry at
            // WARN, a dead letter at ERROR) with its attempt and error.
            .layer(TraceLayer::new().make_span_with(TaskSpan).on_failure(()))
            .data(runner.clone())
            .build(handle::<K>)
    })
}
