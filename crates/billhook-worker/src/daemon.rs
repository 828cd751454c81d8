//! `billhook-worker run`: apalis workers on PostgreSQL, woken by LISTEN/NOTIFY and polling on
//! an interval too, with the admin listener and the retention sweep beside them.
//!
//! Lifecycle: start → refuse an unmigrated database → serve until `shutdown` completes → stop
//! fetching, let in-flight jobs finish within the shutdown timeout → return. Jobs fetched but
//! not started go back to the queue; a job cut off by the deadline returns through the
//! heartbeat on another worker.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apalis::layers::WorkerBuilderExt as _;
use apalis::layers::tracing::{ContextualTaskSpan, TraceLayer};
use apalis::prelude::{BackendExt as _, Monitor, WorkerBuilder};
use apalis_postgres::{Config, PostgresStorage};
use sqlx::PgPool;

use crate::billing::Context;
use crate::dunning::Dunning;
use crate::dunning::job::DunningStepJob;
use crate::email::Mailer;
use crate::email::job::SendEmailJob;
use crate::jobs::process_event::ProcessEventJob;
use crate::metrics::Metrics;
use crate::notify::Outbox;
use crate::notify::job::NotifyAppJob;
use crate::restart::RestartPolicy;
use crate::runner::{Backoff, JobKind, Runner, handle};
use crate::settings::RunSettings;

/// A worker process bound to its admin port, ready to run.
pub struct Daemon {
    pool: PgPool,
    settings: RunSettings,
    admin: TcpListener,
    metrics: Metrics,
    name: String,
    jobs: Jobs,
}

/// Every job kind, built (and its settings checked) before the process starts serving.
struct Jobs {
    process_event: ProcessEventJob,
    notify_app: NotifyAppJob,
    send_email: SendEmailJob,
    dunning_step: DunningStepJob,
}

impl Daemon {
    /// Refuses an unmigrated database or unusable settings (notices, email, Stripe's API),
    /// and binds the admin listener.
    pub async fn build(pool: PgPool, settings: RunSettings) -> anyhow::Result<Self> {
        billhook_core::db::check_migrated(&pool).await?;
        let metrics = Metrics::new();
        let stripe = settings.billing.stripe_api()?;
        let mailer = Mailer {
            max_attempts: settings.email.max_attempts,
            payment_failed_hold: settings.email.payment_failed_hold,
        };
        let dunning = Dunning {
            schedule: settings.dunning.schedule.clone(),
            max_attempts: settings.dunning.max_attempts,
        };
        let context = Context {
            outbox: Outbox::from_settings(&settings.notify)?,
            ledger: settings.billing.ledger_rule,
            stripe: stripe.clone(),
            mailer: mailer.clone(),
            dunning: dunning.clone(),
        };
        let jobs = Jobs {
            process_event: ProcessEventJob {
                pool: pool.clone(),
                metrics: metrics.clone(),
                context,
            },
            notify_app: NotifyAppJob::new(pool.clone(), &settings.notify)?,
            send_email: SendEmailJob::new(pool.clone(), &settings.email)?,
            dunning_step: DunningStepJob {
                pool: pool.clone(),
                dunning,
                mailer,
                stripe,
            },
        };
        crate::billing::settings::store(&pool, &settings.billing).await?;
        let admin = TcpListener::bind(&settings.admin_listen)
            .with_context(|| format!("cannot listen on {}", settings.admin_listen))?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "billhook".to_owned());
        // Unique per process start: a restarted worker must not inherit its predecessor's
        // heartbeat, or the job it was running when killed would stay Running forever.
        let name = format!("{host}-{}", ulid::Ulid::generate());
        Ok(Self {
            pool,
            settings,
            admin,
            metrics,
            name,
            jobs,
        })
    }

    pub fn admin_port(&self) -> u16 {
        self.admin.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            pool,
            settings,
            admin,
            metrics,
            name,
            jobs,
        } = self;
        let admin = crate::admin::serve(admin, pool.clone(), metrics.clone())?;
        let admin_handle = admin.handle();
        let admin_task = tokio::spawn(admin);
        let retention = tokio::spawn(crate::retention::run(
            pool.clone(),
            settings.job_retention,
            Duration::from_secs(600),
        ));
        let backoff = Backoff {
            base: settings.retry_base,
            max: settings.retry_max,
        };

        let base = (pool.clone(), metrics.clone(), backoff);
        let restarts = Arc::new(RestartPolicy::new(settings.give_up_after));
        let Jobs {
            process_event,
            notify_app,
            send_email,
            dunning_step,
        } = jobs;
        // One monitor per job kind, each on a task of its own. apalis polls all the workers of
        // a monitor from one task, and the restart policy's pause blocks that task: with one
        // monitor, a kind restarting after a database outage froze every other kind's
        // in-flight jobs, their deadlines and their heartbeats (so other workers took their
        // jobs over), and the pauses of four kinds together left almost no time to run at all.
        let monitors = [
            monitor(
                &pool,
                &settings,
                &name,
                shared(process_event, &base),
                &restarts,
            ),
            monitor(
                &pool,
                &settings,
                &name,
                shared(notify_app, &base),
                &restarts,
            ),
            monitor(
                &pool,
                &settings,
                &name,
                shared(send_email, &base),
                &restarts,
            ),
            monitor(
                &pool,
                &settings,
                &name,
                shared(dunning_step, &base),
                &restarts,
            ),
        ];
        tracing::info!(worker = %name, admin = %settings.admin_listen, "billhook-worker running");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut running = tokio::task::JoinSet::new();
        for monitor in monitors {
            let mut stop = stop_rx.clone();
            running.spawn(monitor.run_with_signal(async move {
                let _ = stop.wait_for(|stop| *stop).await;
                Ok(())
            }));
        }
        tokio::pin!(shutdown);
        let mut result = Ok(());
        let asked_to_stop = tokio::select! {
            () = &mut shutdown => true,
            // A monitor ends early only when its worker gave up: stop the others too.
            Some(ended) = running.join_next() => {
                result = flatten(ended);
                false
            }
        };
        if asked_to_stop {
            tracing::info!("finishing in-flight jobs");
        }
        let _ = stop_tx.send(true);
        while let Some(ended) = running.join_next().await {
            result = result.and(flatten(ended));
        }
        // A monitor also ends when its worker gave up; that must not look like a clean stop,
        // so a supervisor (systemd, compose, Kubernetes) restarts the process.
        retention.abort();
        admin_handle.stop(true).await;
        let _ = admin_task.await;
        result.context("worker failed")?;
        if !asked_to_stop {
            anyhow::bail!(
                "a job worker kept failing for longer than {} (BILLHOOK_WORKER_GIVE_UP_AFTER); see the errors above",
                humantime::format_duration(settings.give_up_after)
            );
        }
        tracing::info!("billhook-worker stopped");
        Ok(())
    }
}

/// The runner of one job kind, shared by its apalis worker's tasks.
fn shared<K: JobKind>(
    kind: K,
    (pool, metrics, backoff): &(PgPool, Metrics, Backoff),
) -> Arc<Runner<K>> {
    Arc::new(Runner {
        kind,
        pool: pool.clone(),
        metrics: metrics.clone(),
        backoff: *backoff,
    })
}

/// The monitor of one job kind: its worker, the shared restart policy, the shutdown timeout.
fn monitor<K: JobKind>(
    pool: &PgPool,
    settings: &RunSettings,
    process: &str,
    runner: Arc<Runner<K>>,
    restarts: &Arc<RestartPolicy>,
) -> Monitor {
    let restarts = Arc::clone(restarts);
    register(Monitor::new(), pool, settings, process, runner)
        .should_restart(move |worker, error| {
            // A fresh name per restart (see `register`), so jobs the failed instance held
            // come back through the heartbeat instead of staying Running.
            tracing::error!(worker = %worker.name(), restarts = worker.restarts(), error = %error,
                    "worker stopped with an error; restarting it");
            restarts.should_restart(worker.name())
        })
        .shutdown_timeout(settings.shutdown_timeout)
}

/// A monitor's end as one result: its own error, or its task's panic.
fn flatten(
    ended: Result<Result<(), apalis::prelude::MonitorError>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    match ended {
        Ok(result) => result.context("worker failed"),
        Err(e) => Err(anyhow::Error::new(e).context("a worker task panicked")),
    }
}

/// Adds the apalis worker for one job kind to the monitor.
pub fn register<K: JobKind>(
    monitor: Monitor,
    pool: &PgPool,
    settings: &RunSettings,
    process: &str,
    runner: Arc<Runner<K>>,
) -> Monitor {
    let pool = pool.clone();
    let config = Config::default()
        .queue(K::QUEUE)
        .batch_size(settings.batch_size as usize)
        .heartbeat_interval(settings.heartbeat_interval)
        .missed_heartbeats(settings.missed_heartbeats as usize);
    let poll = settings.poll_interval;
    let concurrency = settings.concurrency as usize;
    let name = format!("{process}-{}", K::KIND);
    monitor.register(move |restarts| {
        let backend = PostgresStorage::<serde_json::Value>::new(&pool)
            .with_config(config.clone())
            .with_pubsub()
            .poll_with_interval(poll);
        WorkerBuilder::new(format!("{name}-{restarts}"))
            .backend(backend)
            .concurrency(concurrency)
            // INFO, not apalis's DEBUG default: a span filtered out would cut the trace the
            // receiver started.
            .layer(
                TraceLayer::new()
                    .make_span_with(ContextualTaskSpan::new().level(tracing::Level::INFO)),
            )
            .data(runner.clone())
            .build(handle::<K>)
    })
}
